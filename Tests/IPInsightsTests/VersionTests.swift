import Testing
@testable import IPInsights

@Test func versionIsSemantic() {
    #expect(IPInsightsVersion.string.split(separator: ".").count == 3)
}
