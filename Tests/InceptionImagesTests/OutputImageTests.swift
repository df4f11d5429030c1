import Foundation
import InceptionCore
import InceptionImages
import XCTest

final class OutputImageTests: XCTestCase {
    func testEncodedPNGDecodesToTheSamePixels() throws {
        let pixels = (0..<(5 * 3 * 3)).map { UInt8(($0 * 37) % 256) }
        let png = try PNGEncoder.encode(pixels: pixels, width: 5, height: 3, channels: 3)
        let decoded = try ImageDecoder.decode(data: png, name: "roundtrip.png")
        XCTAssertEqual(decoded, RGBImage(width: 5, height: 3, pixels: pixels))
    }

    /// 10 channels → a 4-column, 3-row grid; a 2x2 map is enlarged to at least 32 pixels a tile.
    func testFeatureGridLaysOutOneEnlargedTilePerChannel() {
        let maps = Tensor(shape: [1, 2, 2, 10], scalars: (0..<40).map(Float.init))
        let grid = FeatureMapGrid.render(maps, minTile: 32)
        XCTAssertEqual(grid.width, 4 * (32 + 1) + 1)
        XCTAssertEqual(grid.height, 3 * (32 + 1) + 1)
    }

    /// Each tile is scaled to its own channel's range: the lowest pixel is the map's darkest colour.
    func testFeatureGridScalesEachChannelToItsOwnRange() {
        let maps = Tensor(shape: [1, 1, 2, 1], scalars: [-5, 100])
        let grid = FeatureMapGrid.render(maps, minTile: 4)   // a 1x2 map enlarged to a 2x4 tile
        let low = grid[x: 1, y: 1], high = grid[x: 3, y: 1]
        XCTAssertEqual([low.0, low.1, low.2], [68, 1, 84])     // viridis' first stop
        XCTAssertEqual([high.0, high.1, high.2], [253, 231, 37]) // and its last
    }

    func testDirectoriesExpandRecursivelyToSortedImageFiles() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("expand-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("b/c"), withIntermediateDirectories: true)
        for name in ["b/c/z.PNG", "a.jpg", "notes.txt", ".hidden.jpg", "b/y.jpeg"] {
            FileManager.default.createFile(atPath: root.appendingPathComponent(name).path, contents: Data([1]))
        }
        defer { try? FileManager.default.removeItem(at: root) }
        XCTAssertEqual(ImageFiles.expand([root.path]).map { String($0.dropFirst(root.path.count + 1)) },
                       ["a.jpg", "b/c/z.PNG", "b/y.jpeg"])
        XCTAssertEqual(ImageFiles.expand(["missing.jpg"]), ["missing.jpg"])
    }

    func testDecodingManyFilesKeepsOrderAndReportsEachFailure() throws {
        let results = ImageFiles.decode([Paths.sample("cat.jpg"), "/nonexistent/x.png", Paths.sample("chelsea.png")])
        XCTAssertNoThrow(try results[0].get())
        XCTAssertThrowsError(try results[1].get()) { XCTAssertTrue("\($0)".contains("/nonexistent/x.png")) }
        XCTAssertNoThrow(try results[2].get())
    }
}
