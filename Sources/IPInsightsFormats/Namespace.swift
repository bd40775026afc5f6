public enum IPInsightsFormats {}
