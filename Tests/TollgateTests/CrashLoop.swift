import Foundation
import Synchronization
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The crash loop of RELIABILITY E4 (`make crash-test`; a short form in `make test`):
/// a real `tollgate serve` is killed with SIGKILL at a random moment of each round
/// while `senders` clients send, then started again on the same spool. With
/// `.powerCut`, the relay runs under the `powercut.so` write-order shim and after
/// each kill its spool is rebuilt from what the shim says a disk would have kept
/// (only what was fsynced), as after a power cut.
///
/// At the end a relay runs until every acknowledged message has reached the sink;
/// then every copy the sink holds is compared with what was sent (all bytes after
/// the relay's own `Received:` field), acknowledged messages that never arrived are
/// counted as lost, and each copy after the first of a message is counted as a
/// duplicate of the last kill before it arrived.
final class CrashLoop {
    enum Fault: Equatable {
        /// SIGKILL; the spool's files stay as the kernel has them.
        case kill
        /// SIGKILL and the spool rebuilt from its last fsynced state. With
        /// `ignoreFsync` the shim makes nothing durable (a disk that lies about
        /// its cache): the negative control, which must show loss.
        case powerCut(ignoreFsync: Bool)
    }

    struct Settings {
        var rounds: Int
        var seed: UInt64
        var senders = 12
        var fault: Fault = .kill
        /// Whether the upstream sink runs during the rounds (otherwise it starts only
        /// for the final drain, so every acknowledged message must come from the spool).
        var upstreamDuringRounds = true
        /// The relay's connections to the upstream: at most one delivery each can be
        /// answered by the sink and not yet recorded at a kill.
        var upstreamConnections = 20
        /// Each round lasts a random time in this range (seconds) before the kill.
        var roundLength = 0.5...3.0

        /// `rounds` from the environment variable `roundsVariable` (default
        /// `defaultRounds`), the seed from `CRASH_SEED` (default random; printed).
        static func fromEnvironment(roundsVariable: String, defaultRounds: Int) -> Settings {
            let environment = ProcessInfo.processInfo.environment
            let rounds = environment[roundsVariable].flatMap(Int.init) ?? defaultRounds
            let seed = environment["CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...999_999)
            return Settings(rounds: max(1, rounds), seed: seed)
        }
    }

    struct Round {
        var length = 0.0
        var acknowledged = 0
        var refused = 0
        var killedAt: Int64 = 0
        var duplicates = 0
    }

    struct Result {
        var rounds: [Round]
        var acknowledged: Int
        var lost: [String]
        /// Copies at the sink that differ from what was sent (cut, altered, unknown).
        var damaged: [String]
        var duplicates: Int
        var deliveredUnacknowledged: Int
        var queueEmpty: Bool
        var table: String
    }

    let settings: Settings
    let directory: TemporaryDirectory
    private var random: SplitMix64

    init(settings: Settings) throws {
        self.settings = settings
        self.directory = try TemporaryDirectory(label: "crash")
        self.random = SplitMix64(seed: settings.seed)
    }

    var spool: String { directory.path + "/spool" }
    var shadow: String { directory.path + "/shadow" }

    func run() throws -> Result {
        let name: String
        switch settings.fault {
        case .kill: name = "kill -9"
        case .powerCut(let ignore): name = ignore ? "power cut, fsync ignored (negative control)" : "power cut"
        }
        let upstream = settings.upstreamDuringRounds ? "delivering during the rounds" : "upstream down during the rounds"
        print("crash loop (\(name), \(upstream)): \(settings.rounds) rounds, \(settings.senders) senders, seed \(settings.seed) (CRASH_SEED=\(settings.seed) replays the kill times and message sizes)")
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        let sinkPort = freePort()
        var sink: RawSMTPSink? = settings.upstreamDuringRounds ? try startSink(port: sinkPort) : nil
        defer { sink?.stop() }
        let relay = try RelayProcess(rest: upstreamSection(port: sinkPort, connections: settings.upstreamConnections), directory: directory)
        defer { relay.stop() }
        let environment = try relayEnvironment()
        let acknowledged = LockedList()
        var rounds: [Round] = []
        for number in 0..<settings.rounds {
            try relay.start(environment: environment)
            var round = Round()
            round.length = Double.random(in: settings.roundLength, using: &random)
            let counts = try load(round: number, port: relay.port, acknowledged: acknowledged) {
                Thread.sleep(forTimeInterval: round.length)
                round.killedAt = wallClockNanoseconds()
                relay.kill9()
            }
            round.acknowledged = counts.acknowledged
            round.refused = counts.refused
            if case .powerCut = settings.fault { try restoreAfterPowerCut() }
            rounds.append(round)
        }

        // The drain: a relay without faults delivers what the spool holds.
        if sink == nil { sink = try startSink(port: sinkPort) }
        let collector = SinkCollector(directory: sink!.directory)
        try relay.start(environment: nil)
        let acked = Set(acknowledged.values)
        // Until everything acknowledged has arrived, or the queue is empty and nothing
        // has arrived for a while (then what is missing is lost).
        var quiet = 0
        var count = -1
        waitUntil(timeout: 300, interval: 1) {
            let delivered = collector.delivered()
            if acked.isSubset(of: delivered) { return true }
            let empty = ((try? relay.cli(["queue", "list", "--json"]))?.stdout ?? "x").isEmpty
            quiet = empty && delivered.count == count ? quiet + 1 : 0
            count = delivered.count
            return quiet >= 5
        }
        let queueEmpty = waitUntil(timeout: 60, interval: 0.5) { ((try? relay.cli(["queue", "list", "--json"]))?.stdout ?? "x").isEmpty }
        Thread.sleep(forTimeInterval: 1)
        relay.stop()
        return analyse(rounds: rounds, acknowledged: acked, copies: collector.copies(), queueEmpty: queueEmpty)
    }

    // MARK: - The load

    /// Runs `settings.senders` clients until `fault` returns (it kills the relay),
    /// then until each notices; returns the replies counted in this round.
    private func load(round: Int, port: Int, acknowledged: LockedList, fault: () -> Void) throws -> (acknowledged: Int, refused: Int) {
        let killed = Atomic<Bool>(false)
        let acked = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        let group = DispatchGroup()
        for sender in 0..<settings.senders {
            group.enter()
            Thread.detachNewThread {
                defer { group.leave() }
                var n = 0
                while !killed.load(ordering: .acquiring) {
                    let marker = "r\(round)s\(sender)n\(n)"
                    n += 1
                    do {
                        let reply = try SMTPTestClient.sendMessage(port: port, from: "crash@example.com", to: ["sink@example.net"], data: crashMessage(marker: marker), timeout: 15)
                        if reply.code == 250 {
                            acknowledged.append(marker)
                            acked.add(1, ordering: .relaxed)
                        } else {
                            refused.add(1, ordering: .relaxed)
                        }
                    } catch {
                        // Refused or cut by the kill; before it, try again shortly.
                        if !killed.load(ordering: .acquiring) { usleep(10_000) }
                    }
                }
            }
        }
        fault()
        killed.store(true, ordering: .releasing)
        guard group.wait(timeout: .now() + 60) == .success else { throw TestFailure("senders did not stop within 60 s of the kill") }
        return (acked.load(ordering: .relaxed), refused.load(ordering: .relaxed))
    }

    private func startSink(port: Int) throws -> RawSMTPSink {
        var options = RawSMTPSink.Options()
        options.lifetime = 3600
        return try RawSMTPSink.start(port: port, directory: directory.path + "/sink", options: options)
    }

    // MARK: - The power cut

    /// The relay's environment: with `.powerCut`, the shim preloaded.
    private func relayEnvironment() throws -> [String: String]? {
        guard case .powerCut(let ignoreFsync) = settings.fault else { return nil }
        var environment = ChildProcess.inheritedEnvironment()
        environment["LD_PRELOAD"] = try PowerCutShim.build(in: directory.path)
        environment["POWERCUT_DIR"] = spool
        environment["POWERCUT_SHADOW"] = shadow
        if ignoreFsync { environment["POWERCUT_IGNORE_FSYNC"] = "1" }
        return environment
    }

    /// The spool as a disk would have it after a power cut: the durable entries with
    /// their last synced content, nothing else.
    private func restoreAfterPowerCut() throws {
        try PowerCutShim.restore(folder: spool, shadow: shadow)
    }

    // MARK: - The verdict

    private func analyse(rounds: [Round], acknowledged: Set<String>, copies: [SinkCollector.Copy], queueEmpty: Bool) -> Result {
        var rounds = rounds
        var byMarker: [String: [Int64]] = [:]
        var damaged: [String] = []
        for copy in copies {
            guard let marker = copy.marker, copy.intact else {
                damaged.append(copy.file)
                continue
            }
            byMarker[marker, default: []].append(copy.time)
        }
        var duplicates = 0
        for times in byMarker.values where times.count > 1 {
            for time in times.sorted().dropFirst() {
                duplicates += 1
                // The kill after which this copy went out again.
                if let k = rounds.lastIndex(where: { $0.killedAt < time }) { rounds[k].duplicates += 1 }
            }
        }
        let lost = acknowledged.subtracting(byMarker.keys).sorted()
        let unacknowledged = Set(byMarker.keys).subtracting(acknowledged).count
        var table = "round  length ms  acknowledged  refused  duplicates after its kill\n"
        for (i, r) in rounds.enumerated() {
            table += String(format: "%5d  %9d  %12d  %7d  %10d\n", i + 1, Int(r.length * 1000), r.acknowledged, r.refused, r.duplicates)
        }
        let share = acknowledged.isEmpty ? 0 : Double(duplicates) * 100 / Double(acknowledged.count)
        table += String(
            format: "total: %d acknowledged, %d lost, %d damaged copies, %d duplicates (%.2f%%, at most %d after one kill), %d delivered without a 250 (cut before the reply)",
            acknowledged.count, lost.count, damaged.count, duplicates, share, rounds.map(\.duplicates).max() ?? 0, unacknowledged
        )
        print(table)
        return Result(
            rounds: rounds, acknowledged: acknowledged.count, lost: lost, damaged: damaged, duplicates: duplicates,
            deliveredUnacknowledged: unacknowledged, queueEmpty: queueEmpty, table: table
        )
    }
}

/// The configuration of one upstream on 127.0.0.1:`port`, retried every second.
func upstreamSection(port: Int, connections: Int = 20) -> String {
    """
    upstreams:
      - name: primary
        hosts: [127.0.0.1:\(port)]
        tls: none
        max_connections: \(connections)
    delivery:
      default_upstream: primary
      retry: [1s]
    """
}

/// The content of the message tagged `marker`: its size (300 B to 16 KiB) and lines
/// follow from the marker, so the check rebuilds it instead of keeping every message.
/// Lines that begin with "." (one of them a lone ".") make the relay dot-stuff.
func crashMessage(marker: String) -> [UInt8] {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in marker.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    let size = 300 + Int(hash % 16_000)
    var text = "From: crash@example.com\r\nTo: sink@example.net\r\nSubject: crash loop \(marker)\r\nX-Marker: \(marker)\r\n\r\n"
    var line = 0
    while text.utf8.count < size {
        switch line % 9 {
        case 3: text += ".\r\n"
        case 6: text += "..\(marker) stuffed \(line)\r\n"
        default: text += "\(marker) line \(line) \(String(repeating: "abcdefghij", count: Int((hash >> (line % 32)) % 7)))\r\n"
        }
        line += 1
    }
    return Array(text.utf8)
}

/// Reads the copies ``RawSMTPSink`` stores as they come (each file once).
final class SinkCollector: @unchecked Sendable {
    struct Copy {
        var file: String
        var marker: String?
        /// Whether everything after the relay's `Received:` field is the sent message.
        var intact: Bool
        /// When the sink finished it (wall clock, nanoseconds).
        var time: Int64
    }

    let directory: String
    private var seen: [String: Copy] = [:]

    init(directory: String) {
        self.directory = directory
    }

    /// The markers of the copies stored so far.
    func delivered() -> Set<String> {
        Set(copies().compactMap(\.marker))
    }

    func copies() -> [Copy] {
        for name in TestFiles.list(directory) where name.hasSuffix(".json") && seen[name] == nil {
            let base = directory + "/" + name.dropLast(5)
            guard let content = TestFiles.read(base + ".eml"), let time = TestFiles.modificationTime(directory + "/" + name) else { continue }
            let message = Array(content[receivedHeaderLength(content)...])
            let marker = Self.marker(in: message)
            seen[name] = Copy(file: name, marker: marker, intact: marker.map { crashMessage(marker: $0) == message } ?? false, time: time)
        }
        return Array(seen.values)
    }

    /// The value of the `X-Marker:` field of `message` (in its header).
    static func marker(in message: [UInt8]) -> String? {
        let field = Array("\r\nX-Marker: ".utf8)
        let limit = min(message.count, 1024)
        guard limit >= field.count else { return nil }
        for start in 0...(limit - field.count) where message[start..<(start + field.count)].elementsEqual(field) {
            let value = message[(start + field.count)...].prefix { $0 != 13 }
            return String(decoding: value, as: UTF8.self)
        }
        return nil
    }
}

/// The `powercut.so` write-order shim (`Tests/Fixtures/PowerCut/powercut.c`).
enum PowerCutShim {
    static var source: String {
        let file = #filePath
        let tests = file[..<(file.range(of: "/TollgateTests/")?.lowerBound ?? file.startIndex)]
        return tests + "/Fixtures/PowerCut/powercut.c"
    }

    /// The environment of a relay run under the shim, watching `spool` (made here)
    /// with its shadow copy in `shadow`; callers add the fault switches.
    static func environment(in folder: String, spool: String, shadow: String) throws -> [String: String] {
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true)
        var environment = ChildProcess.inheritedEnvironment()
        environment["LD_PRELOAD"] = try build(in: folder)
        environment["POWERCUT_DIR"] = spool
        environment["POWERCUT_SHADOW"] = shadow
        return environment
    }

    /// Builds the shim into `folder` with gcc; returns the library's path.
    static func build(in folder: String) throws -> String {
        let library = folder + "/powercut.so"
        if TestFiles.exists(library) { return library }
        let result = try ChildProcess.run("gcc", ["-shared", "-fPIC", "-O2", "-Wall", "-Wno-format-truncation", "-o", library, source, "-ldl", "-lpthread"], timeout: 120)
        guard result.status == 0 else { throw TestFailure("cannot build the power-cut shim: \(result.stderr)") }
        return library
    }

    /// Rebuilds `folder` from `shadow`: the durable entries with their synced content.
    static func restore(folder: String, shadow: String) throws {
        for name in TestFiles.list(folder) { unlink(folder + "/" + name) }
        for name in TestFiles.list(shadow + "/entries") {
            try TestFiles.write(TestFiles.read(shadow + "/data/" + name) ?? [], to: folder + "/" + name)
        }
    }
}

/// A seeded generator (SplitMix64), so a round's timing can be replayed.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

func wallClockNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}
