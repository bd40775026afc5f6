import Testing
@testable import IPSightCore

@Suite struct JSONTests {
    @Test func parsesEveryKindOfValue() throws {
        let v = try JSONValue.parse(#"{"a": [1, -2.5e3, true, false, null], "b": "x\"\\\/\n\u00e9\ud83d\ude00", "c": {}}"#)
        #expect(v["a"] == .array([.number(1), .number(-2500), .bool(true), .bool(false), .null]))
        #expect(v["b"] == .string("x\"\\/\né😀"))
        #expect(v["c"] == .object([]))
        // Keys keep their order.
        #expect(v.objectValue?.map(\.0) == ["a", "b", "c"])
    }

    @Test(arguments: [
        ("{", 1, 2), ("{\"a\" 1}", 1, 6), ("[1,]", 1, 4), ("\n\n  tru", 3, 3), ("\"abc", 1, 5),
        ("{\"a\":1}}", 1, 8), ("01", 1, 2), ("\"\\x\"", 1, 4), ("\"\\ud800\"", 1, 8), ("-", 1, 2),
    ])
    func reportsErrorsWithLocation(_ text: String, _ line: Int, _ column: Int) {
        do {
            _ = try JSONValue.parse(text)
            Issue.record("'\(text)' parsed")
        } catch {
            #expect(error.line == line && error.column == column, "\(text): \(error)")
        }
    }

    @Test func deepNestingIsRefusedNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONError.self) { try JSONValue.parse(deep) }
    }

    @Test func writerRoundTrips() throws {
        let value = JSONValue.object([("k", .string("tab\tquote\"ctl\u{01}")), ("n", .number(0.25)), ("i", .number(3)), ("l", .array([.null, .bool(true)]))])
        let text = JSONWriter.string(value)
        #expect(text == #"{"k": "tab\tquote\"ctl\u0001", "n": 0.25, "i": 3, "l": [null, true]}"#)
        #expect(try JSONValue.parse(text) == value)
    }
}
