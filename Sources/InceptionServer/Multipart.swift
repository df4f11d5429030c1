/// A minimal `multipart/form-data` reader (RFC 7578): enough to take a file field out of a form
/// posted by a browser or `curl -F`.
enum Multipart {
    struct Part {
        /// Header names lowercased.
        var headers: [String: String]
        var name: String?
        var filename: String?
        var contentType: String?
        /// The part's bytes, as indices into the parsed body.
        var range: Range<Int>
    }

    struct ParseError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// The `boundary` parameter of a `multipart/form-data` Content-Type, or nil.
    static func boundary(contentType: String) -> String? {
        let params = parameters(contentType)
        guard let value = params["boundary"], !value.isEmpty, value.utf8.count <= 200 else { return nil }
        return value
    }

    /// `type/subtype; a=b; c="d"` → ["a": "b", "c": "d"] (names lowercased); the media type
    /// itself is under "".
    static func parameters(_ header: String) -> [String: String] {
        var result: [String: String] = [:]
        var pieces: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for ch in header {
            if escaped { current.append(ch); escaped = false; continue }
            if quoted && ch == "\\" { escaped = true; continue }
            if ch == "\"" { quoted.toggle(); continue }
            if ch == ";" && !quoted { pieces.append(current); current = ""; continue }
            current.append(ch)
        }
        pieces.append(current)
        for (i, piece) in pieces.enumerated() {
            let trimmed = piece.trimmingSpaces
            if i == 0 { result[""] = trimmed.lowercased(); continue }
            guard let eq = trimmed.firstIndex(of: "=") else { continue }
            let name = String(trimmed[..<eq]).trimmingSpaces.lowercased()
            result[name] = String(trimmed[trimmed.index(after: eq)...]).trimmingSpaces
        }
        return result
    }

    /// The parts of `body`, delimited by `boundary`.
    static func parse(_ body: UnsafeRawBufferPointer, boundary: String) throws(ParseError) -> [Part] {
        let bytes = body.bindMemory(to: UInt8.self)
        let delimiter = Array(("--" + boundary).utf8)
        let crlf: [UInt8] = [13, 10]
        // The first delimiter may start the body or follow a preamble ending in CRLF.
        guard var position = find(delimiter, in: bytes, from: 0) else {
            throw ParseError("multipart body has no boundary '\(boundary)'")
        }
        var parts: [Part] = []
        while true {
            position += delimiter.count
            // "--" after a delimiter ends the body.
            if position + 1 < bytes.count, bytes[position] == 45, bytes[position + 1] == 45 { break }
            // Transport padding, then CRLF.
            while position < bytes.count, bytes[position] == 32 || bytes[position] == 9 { position += 1 }
            guard position + 1 < bytes.count, bytes[position] == 13, bytes[position + 1] == 10 else {
                throw ParseError("malformed multipart body: no line break after a boundary")
            }
            position += 2
            let headerEnd: Int
            if position + 1 < bytes.count, bytes[position] == 13, bytes[position + 1] == 10 {
                headerEnd = position - 2  // no headers: the blank line follows the boundary's
            } else if let end = find([13, 10, 13, 10], in: bytes, from: position) {
                headerEnd = end
            } else {
                throw ParseError("malformed multipart body: a part's headers do not end")
            }
            var headers: [String: String] = [:]
            if headerEnd > position {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[position..<headerEnd]), as: UTF8.self)
                for line in text.split(separator: "\r\n", omittingEmptySubsequences: true) {
                    guard let colon = line.firstIndex(of: ":") else {
                        throw ParseError("malformed multipart part header '\(line.prefix(80))'")
                    }
                    headers[String(line[..<colon]).trimmingSpaces.lowercased()] =
                        String(line[line.index(after: colon)...]).trimmingSpaces
                }
            }
            let contentStart = headerEnd + 4
            guard let next = find(crlf + delimiter, in: bytes, from: contentStart) else {
                throw ParseError("malformed multipart body: the last part has no closing boundary")
            }
            let disposition = headers["content-disposition"].map(parameters) ?? [:]
            parts.append(Part(headers: headers, name: disposition["name"], filename: disposition["filename"],
                              contentType: headers["content-type"], range: contentStart..<next))
            position = next + 2
        }
        return parts
    }

    /// The part holding the upload: the first with a file name, else one named "file" or
    /// "image", else the only part.
    static func filePart(_ parts: [Part]) -> Part? {
        parts.first { $0.filename != nil }
            ?? parts.first { $0.name == "file" || $0.name == "image" }
            ?? (parts.count == 1 ? parts[0] : nil)
    }

    /// The first index at or after `start` where `needle` occurs.
    static func find(_ needle: [UInt8], in haystack: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard !needle.isEmpty, start >= 0, haystack.count - start >= needle.count else { return nil }
        let first = needle[0]
        let last = haystack.count - needle.count
        var i = start
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return String(s)
    }
}
