import Foundation
import MNIST
import Testing
import TestSupport

/// The downloader against a real HTTP server on 127.0.0.1, through the same `curl` child process users get.
@Suite(.serialized) struct DownloaderTests {
    /// Four small IDX files, and a downloader expecting exactly their checksums.
    struct Fixture {
        var files: [DatasetFile: [UInt8]] = [:]
        var checksums: [DatasetFile: String] = [:]

        init() {
            var g = SeededGenerator(seed: 11)
            for role in DatasetFile.allCases {
                let n = role == .trainImages || role == .trainLabels ? 20 : 6
                let isImages = role == .trainImages || role == .testImages
                let array = isImages
                    ? IDXArray(elementType: .uint8, shape: [n, 2, 2], storage: .uint8((0..<n * 4).map { _ in UInt8(g.uniform(below: 256)) }))
                    : IDXArray(elementType: .uint8, shape: [n], storage: .uint8((0..<n).map { _ in UInt8(g.uniform(below: 10)) }))
                let raw = array.encoded()
                files[role] = gzipCompress(raw)
                checksums[role] = sha256Hex(raw)
            }
        }

        func routes(prefix: String, corrupt: DatasetFile? = nil) -> [String: LoopbackHTTPServer.Response] {
            var routes = [String: LoopbackHTTPServer.Response]()
            for (role, bytes) in files {
                var body = bytes
                if role == corrupt { body = gzipCompress(Array("not the right file".utf8)) }
                routes["/\(prefix)/\(role.canonicalName).gz"] = .init(body: body)
            }
            return routes
        }

        func downloader(_ mirrors: [URL]) -> DatasetDownloader {
            var d = DatasetDownloader(dataset: .mnist, mirrors: mirrors)
            d.checksums = checksums
            return d
        }
    }

    @Test func downloadsVerifiesAndLoads() throws {
        let fixture = Fixture()
        let server = try LoopbackHTTPServer(routes: fixture.routes(prefix: "mnist"))
        defer { server.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcomes = try fixture.downloader([server.baseURL.appendingPathComponent("mnist")]).download(into: dir)
        #expect(outcomes.count == 4)
        #expect(outcomes.values.allSatisfy { if case .downloaded = $0 { true } else { false } })
        let data = try Dataset.load(directory: dir)
        #expect(data.train.count == 20 && data.test.count == 6)
        // Nothing but the four files is left in the directory.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == DatasetFile.allCases.map { $0.canonicalName + ".gz" }.sorted())
        // A second run finds them verified and fetches nothing.
        let before = server.requests.count
        let again = try fixture.downloader([server.baseURL.appendingPathComponent("mnist")]).download(into: dir)
        #expect(again.values.allSatisfy { $0 == .alreadyPresent })
        #expect(server.requests.count == before)
    }

    @Test func aDeadMirrorIsSkippedAndReported() throws {
        let fixture = Fixture()
        let server = try LoopbackHTTPServer(routes: fixture.routes(prefix: "good"))
        defer { server.stop() }
        // A port nobody listens on: bind a server, note its port, stop it.
        let dead = try LoopbackHTTPServer(routes: [:])
        let deadURL = dead.baseURL.appendingPathComponent("dead")
        dead.stop()
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var lines = [String]()
        let outcomes = try fixture.downloader([deadURL, server.baseURL.appendingPathComponent("good")]).download(into: dir) { lines.append($0) }
        #expect(outcomes[.trainImages] == .downloaded(from: server.baseURL.appendingPathComponent("good")))
        #expect(lines.contains { $0.contains("mirror failed") && $0.contains(deadURL.absoluteString) })
    }

    @Test func aChecksumMismatchLeavesNothingBehind() throws {
        let fixture = Fixture()
        let server = try LoopbackHTTPServer(routes: fixture.routes(prefix: "bad", corrupt: .trainLabels))
        defer { server.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: DataError.self) {
            try fixture.downloader([server.baseURL.appendingPathComponent("bad")]).download(into: dir)
        }
        #expect(error?.description.contains("train-labels-idx1-ubyte.gz: every mirror failed") == true)
        #expect(error?.description.contains("SHA-256 of the uncompressed data is") == true)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(!left.contains("train-labels-idx1-ubyte.gz"))
        #expect(!left.contains { $0.hasSuffix(".partial") })
    }

    @Test func aMissingFileOnEveryMirrorNamesEachFailure() throws {
        let server = try LoopbackHTTPServer(routes: [:])
        defer { server.stop() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let error = #expect(throws: DataError.self) {
            try Fixture().downloader([server.baseURL.appendingPathComponent("a"), server.baseURL.appendingPathComponent("b")]).download(into: dir)
        }
        let text = error?.description ?? ""
        #expect(text.contains("/a/train-images-idx3-ubyte.gz") && text.contains("/b/train-images-idx3-ubyte.gz"))
        #expect(text.contains("404"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }
}
