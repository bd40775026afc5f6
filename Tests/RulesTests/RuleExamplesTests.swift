import Testing
import LogSources
@testable import Rules

@Suite struct RuleExamplesTests {
    @Test func everyExampleOfEveryRuleFileHolds() throws {
        let rules = try loadRules()
        let report = ExampleCheck.run(rules)
        #expect(rules.files.count >= 10, "the shipped rule files were not found")
        #expect(report.examples >= 60)
        #expect(report.patterns == report.coveredPatterns)
        for failure in report.failures {
            Issue.record("\(failure)")
        }
    }

    @Test func everyRequiredServiceHasAFile() throws {
        let services = Set(try loadRules().files.map(\.service))
        for required in ["sshd", "pam", "su", "sudo", "vsftpd", "proftpd", "dovecot", "postfix", "openvpn", "apache", "nginx", "webapp"] {
            #expect(services.contains(required), "no rule file for \(required)")
        }
    }

    @Test func aPatternWithoutAnExampleFails() throws {
        let text = """
        service = demo
        identifiers = demo
        [a]
        outcome = success
        match = Login ok for <user> from <ip>
        match = Login fine for <user> from <ip>
        example = Nov  4 10:00:00 h demo[1]: Login ok for alice from 192.0.2.1
        expect = outcome=success user=alice ip=192.0.2.1
        """
        let file = try RuleFileParser.parse(text, path: "demo.rules")
        let report = ExampleCheck.run(RuleSet(files: [file]))
        #expect(report.failures.count == 1)
        #expect(report.failures.first?.line == 6)
    }

    @Test func aWrongExpectationFails() throws {
        let text = """
        service = demo
        identifiers = demo
        [a]
        outcome = success
        match = Login ok for <user> from <ip>
        example = Nov  4 10:00:00 h demo[1]: Login ok for alice from 192.0.2.1
        expect = outcome=success user=alice ip=192.0.2.2
        example = Nov  4 10:00:00 h demo[1]: Login ok for bob from 192.0.2.1
        expect = nothing
        """
        let report = ExampleCheck.run(RuleSet(files: [try RuleFileParser.parse(text, path: "demo.rules")]))
        #expect(report.failures.map(\.line) == [6, 8])
    }
}
