import Testing
@testable import IPInsights

@Test func formatsLinkVersion() {
    #expect(IPInsightsVersion.string.split(separator: ".").count == 3)
}
