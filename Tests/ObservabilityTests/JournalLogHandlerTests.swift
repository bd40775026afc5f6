import Foundation
import Logging
import Testing
import TestSupport
@testable import Observability

/// The journald handler against a real journald, read back with journalctl.
@Suite(.serialized) struct JournalLogHandlerTests {
    /// The entries of one logger, as journalctl's JSON objects.
    static func entries(logger label: String) throws -> [[String: Any]] {
        try Journald.entries(matching: "IPSIGHT_LOGGER=" + label)
    }

    @Test func oneEntryPerMessageWithItsPriorityAndIdentifier() throws {
        try Journald.require()
        let label = "ipsight.test-" + Journald.token()
        var logger = Logger(label: label) { JournalLogHandler(label: $0) }
        logger.logLevel = .info
        try Journald.exclusively {
            // A receiver's answer quoted in an error may hold newlines: still one entry.
            logger.warning("alert a1 will be retried in 5s (attempt 1): HTTP 503\nService Unavailable")
            logger.debug("below the level: not sent")
            logger.info("second")
            #expect(waitUntil(seconds: 30) { ((try? Self.entries(logger: label)) ?? []).count >= 2 }, "entries reach the journal")
            let entries = try Self.entries(logger: label)
            #expect(entries.count == 2, "\(entries)")
            let first = try #require(entries.first)
            #expect(first["MESSAGE"] as? String == "\(label): alert a1 will be retried in 5s (attempt 1): HTTP 503\nService Unavailable")
            #expect(first["PRIORITY"] as? String == "4")
            #expect(first["SYSLOG_IDENTIFIER"] as? String == "ipsight")
            #expect((first["CODE_FILE"] as? String)?.hasSuffix("JournalLogHandlerTests.swift") == true, "\(first)")
            #expect(entries.last?["MESSAGE"] as? String == "\(label): second")
            #expect(entries.last?["PRIORITY"] as? String == "6")
        }
    }
}
