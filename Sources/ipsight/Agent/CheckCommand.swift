import AgentClient
import IPSightCore
import AgentAPI
import ArgumentParser
import Foundation
import IPInsights
import IPInsightsFormats

/// `ipsight check`: asks the running agent about a login before it completes, and
/// says what it decided through the exit status, for `pam_exec.so`.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Ask the running agent whether a login should be allowed, challenged or alerted.",
        discussion: """
        Exit status: 0 allow (also while the account is still being learnt), 10 challenge
        (ask for a second factor), 20 alert. When the agent cannot answer within
        --timeout (not running, socket missing, overloaded), --when-down decides:
        allow (fail open, the default), challenge or alert (fail closed).

        With --pam the login comes from pam_exec's environment: PAM_USER, PAM_RHOST
        (a login without a remote host, such as the console, is allowed) and
        PAM_SERVICE. In /etc/pam.d/sshd, require the second factor only when the
        agent does not say allow:

          auth [success=1 default=ignore] pam_exec.so quiet /usr/local/bin/ipsight check --pam
          auth required pam_google_authenticator.so

        Examples:
          ipsight check --user alice --ip 203.0.113.9
          ipsight check --user alice --ip 2001:db8::7 --service openvpn --when-down challenge
        """
    )

    @OptionGroup var agent: AgentClientOptions

    @Option(help: "The user name as the service logs it.") var user: String?
    @Option(help: "The remote address.") var ip: String?
    @Option(help: "The service, as the rules name it (sshd, openvpn, dovecot, ...).") var service: String?
    @Flag(help: "Take user, address and service from pam_exec's PAM_USER, PAM_RHOST and PAM_SERVICE.") var pam = false
    @Option(help: "The decision when the agent cannot answer: allow, challenge or alert.") var whenDown: Verdict = .allow
    @Flag(help: "Print nothing; the exit status says it all.") var quiet = false

    enum Verdict: String, ExpressibleByArgument, CaseIterable {
        case allow, challenge, alert
        var exitCode: Int32 {
            switch self {
            case .allow: 0
            case .challenge: 10
            case .alert: 20
            }
        }
    }

    func validate() throws {
        if !pam && (user == nil || ip == nil) { throw ValidationError("give --user and --ip, or --pam") }
    }

    func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let user = pam ? (environment["PAM_USER"] ?? "") : self.user!
        let host = pam ? (environment["PAM_RHOST"] ?? "") : self.ip!
        let service = service ?? (pam ? environment["PAM_SERVICE"] : nil) ?? "sshd"
        if pam && (host.isEmpty || user.isEmpty) {
            say("allow: no remote address (a local login)")
            throw ExitCode(0)
        }
        guard let address = IPAddress(host.split(separator: "%").first.map(String.init) ?? host) else {
            // A host name (sshd with UseDNS): the agent judges addresses only.
            down("'\(host)' is not an address")
        }
        let request = JSONValue.object([("user", .string(user)), ("ip", .string(address.description)), ("service", .string(service))])
        var body: [UInt8] = []
        JSONWriter.append(request, to: &body)
        let reply: AgentClient.Reply
        do {
            reply = try agent.client().request("POST", "/v1/decide", json: body)
        } catch let error as AgentClientError {
            down(error.description)
        }
        guard reply.status == 200, let answer = try? JSONValue.parse(reply.body),
              let decision = answer["decision"]?.stringValue else {
            down("the agent answered \(reply.status): \(String(decoding: reply.body.prefix(300), as: UTF8.self))")
        }
        let summary = answer["summary"]?.stringValue ?? ""
        let verdict: Verdict = switch decision {
        case "challenge": .challenge
        case "alert": .alert
        default: .allow
        }
        say("\(decision): \(summary)")
        throw ExitCode(verdict.exitCode)
    }

    private func say(_ line: String) {
        if !quiet { print(line) }
    }

    /// The agent could not judge: --when-down decides, and says why on standard error.
    private func down(_ why: String) -> Never {
        Console.error("ipsight check: \(why); --when-down says \(whenDown.rawValue)")
        say("\(whenDown.rawValue): the agent could not judge")
        Foundation.exit(whenDown.exitCode)
    }
}
