import Foundation

/// Pictures in folders named for their class, as torchvision's `ImageFolder` reads them: `DIR/<class>/*.png|*.pgm`,
/// or `DIR/train/<class>/…` and `DIR/test/<class>/…` for a test part of its own.
///
/// Classes are the folder names in sorted order. Every picture must have the size of the first; gray pictures give
/// one channel, and a set holding any colour picture gives three (`[3, height, width]`, channel after channel, as
/// PyTorch lays them out; gray ones repeated in each) unless `grayscale` asks for luma. Pixels stay bytes.
public enum ImageFolder {
    /// The picture files' extensions read (any case).
    public static let extensions: Set<String> = ["png", "pgm"]

    /// Whether `directory` holds `train` and `test` folders rather than class folders.
    public static func hasSplit(_ directory: URL) -> Bool {
        let files = FileManager.default
        var isDirectory: ObjCBool = false
        return ["train", "test"].allSatisfy {
            files.fileExists(atPath: directory.appendingPathComponent($0).path, isDirectory: &isDirectory) && isDirectory.boolValue
        }
    }

    /// The pictures of one folder of class folders. With `classNames` (the training part's, or a checkpoint's), the
    /// folders must be among them and keep their numbers; with `channels` (the training part's), pictures are read
    /// with that many.
    /// - Throws: `DataError` naming the folder or file: no class folders, an empty class, an unreadable picture, or
    ///   one of another size.
    public static func read(_ directory: URL, grayscale: Bool = false, classNames known: [String]? = nil, channels: Int? = nil,
                            size: (width: Int, height: Int)? = nil) throws -> LabeledSamples {
        let files = FileManager.default
        let entries: [String]
        do {
            entries = try files.contentsOfDirectory(atPath: directory.path)
        } catch {
            throw DataError.unreadable(file: directory.path, reason: (error as NSError).localizedDescription)
        }
        var isDirectory: ObjCBool = false
        let folders = entries.filter {
            !$0.hasPrefix(".") && files.fileExists(atPath: directory.appendingPathComponent($0).path, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted()
        guard !folders.isEmpty else {
            throw DataError.malformed(file: directory.path, reason: "no class folders (expected DIR/<class>/*.png, or DIR/train/<class>/ and DIR/test/<class>/)")
        }
        let classNames = known ?? folders
        var paths = [URL](), labels = [Int32]()
        for folder in folders {
            guard let label = classNames.firstIndex(of: folder) else {
                throw DataError.inconsistent(file: directory.appendingPathComponent(folder).path,
                                             reason: "class \(folder) is not one of the training classes (\(classNames.joined(separator: ", ")))")
            }
            let url = directory.appendingPathComponent(folder)
            let pictures = ((try? files.contentsOfDirectory(atPath: url.path)) ?? [])
                .filter { extensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }.sorted()
            guard !pictures.isEmpty else {
                throw DataError.malformed(file: url.path, reason: "class \(folder) holds no pictures (.png or .pgm)")
            }
            for p in pictures {
                paths.append(url.appendingPathComponent(p))
                labels.append(Int32(label))
            }
        }
        // Decoding is most of the time: spread it over the cores, each file into its own slot.
        let decoded = UnsafeMutablePointer<Result<(width: Int, height: Int, rgba: [UInt8], isColour: Bool), Error>?>.allocate(capacity: paths.count)
        decoded.initialize(repeating: nil, count: paths.count)
        defer { decoded.deinitialize(count: paths.count); decoded.deallocate() }
        nonisolated(unsafe) let slots = decoded
        let urls = paths
        DispatchQueue.concurrentPerform(iterations: paths.count) { i in
            slots[i] = Result { try decode(urls[i]) }
        }
        let pictures = try (0..<paths.count).map { try decoded[$0]!.get() }
        let (width, height) = size ?? (pictures[0].width, pictures[0].height)
        if let i = pictures.firstIndex(where: { $0.width != width || $0.height != height }) {
            throw DataError.inconsistent(
                file: paths[i].path, reason: "\(pictures[i].width)×\(pictures[i].height) pixels where the pictures before are \(width)×\(height): every picture must have one size")
        }
        let c = channels ?? (!grayscale && pictures.contains { $0.isColour } ? 3 : 1)
        var pixels = [UInt8]()
        pixels.reserveCapacity(pictures.count * c * width * height)
        for picture in pictures { pixels += Self.pixels(rgba: picture.rgba, channels: c) }
        return try LabeledSamples(values: .bytes(pixels), sampleShape: c == 1 ? [height, width] : [c, height, width],
                                  labels: labels, classNames: classNames, file: directory.path)
    }

    /// A picture file's pixels with `channels` channels (1: gray, 3: red, green and blue planes), alpha composited
    /// over black: what `read` makes of each picture, for classifying one.
    /// - Throws: `DataError` naming the file.
    public static func picture(_ url: URL, channels: Int) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        let picture = try decode(url)
        return (picture.width, picture.height, pixels(rgba: picture.rgba, channels: channels))
    }

    /// RGBA to one gray plane (Rec. 601 luma, then alpha) or three colour planes (each channel times alpha).
    static func pixels(rgba: [UInt8], channels: Int) -> [UInt8] {
        let plane = rgba.count / 4
        var out = [UInt8](repeating: 0, count: channels * plane)
        for i in 0..<plane {
            let (r, g, b, a) = (Int(rgba[4 * i]), Int(rgba[4 * i + 1]), Int(rgba[4 * i + 2]), Int(rgba[4 * i + 3]))
            if channels == 1 {
                out[i] = UInt8((299 * r + 587 * g + 114 * b + 500) / 1000 * a / 255)
            } else {
                out[i] = UInt8(r * a / 255)
                out[plane + i] = UInt8(g * a / 255)
                out[2 * plane + i] = UInt8(b * a / 255)
            }
        }
        return out
    }

    /// A picture as RGBA: PNG, or PGM (gray).
    static func decode(_ url: URL) throws -> (width: Int, height: Int, rgba: [UInt8], isColour: Bool) {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
            throw DataError.unreadable(file: url.path, reason: (error as NSError).localizedDescription)
        }
        if GrayscaleImage.isPNG(bytes) { return try PNGDecoder.decodeRGBA(bytes, file: url.path) }
        let gray = try GrayscaleImage.decode(bytes, file: url.path)
        return (gray.width, gray.height, gray.pixels.flatMap { [$0, $0, $0, 255] }, false)
    }
}
