public enum IPInsightsVersion { public static let string = "0.1.0" }
