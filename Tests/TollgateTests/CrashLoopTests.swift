import Foundation
import TestSupport
import Testing

/// RELIABILITY E1, E4: the crash loop and the power-loss test (``CrashLoop``).
/// `make test` runs 3 rounds of each; `make crash-test` runs `CRASH_ROUNDS` (20)
/// kill rounds and `POWERCUT_ROUNDS` (10) power-cut rounds; `CRASH_SEED` replays a run.
extension LiveRelayTests {
    @Suite(.serialized) struct CrashLoopTests {
        /// SIGKILL at a random moment of every round while 12 clients send and the relay
        /// delivers: every message that got 250 reaches the sink exactly as sent, no copy
        /// is damaged, and each kill repeats at most one delivery per upstream connection.
        @Test(.timeLimit(.minutes(30))) func killNineLoopLosesNothingAcknowledged() throws {
            let settings = CrashLoop.Settings.fromEnvironment(roundsVariable: "CRASH_ROUNDS", defaultRounds: 3)
            let loop = try CrashLoop(settings: settings)
            let result = try loop.run()
            expectNothingLost(result, settings: settings)
            #expect(result.rounds.allSatisfy { $0.duplicates <= settings.upstreamConnections }, "more duplicates after one kill than deliveries in flight:\n\(result.table)")
            loop.directory.remove()
        }

        /// Power loss: the relay runs under the write-order shim, and after each kill its
        /// spool is rebuilt from what was fsynced (files and directory entries). The sink
        /// is down during the rounds, so every acknowledged message must come out of the
        /// rebuilt spool.
        @Test(.timeLimit(.minutes(30))) func powerCutLosesNothingAcknowledged() throws {
            var settings = CrashLoop.Settings.fromEnvironment(roundsVariable: "POWERCUT_ROUNDS", defaultRounds: 3)
            settings.fault = .powerCut(ignoreFsync: false)
            settings.upstreamDuringRounds = false
            let loop = try CrashLoop(settings: settings)
            let result = try loop.run()
            expectNothingLost(result, settings: settings)
            loop.directory.remove()
        }

        /// Power loss while deliveries run: what the relay recorded about deliveries is
        /// committed without fsync (it only repeats deliveries if lost), so a cut may send
        /// again what was delivered since the last fsync; nothing acknowledged is lost.
        @Test(.timeLimit(.minutes(30))) func powerCutWhileDeliveringLosesNothingAcknowledged() throws {
            var settings = CrashLoop.Settings.fromEnvironment(roundsVariable: "POWERCUT_ROUNDS", defaultRounds: 3)
            settings.fault = .powerCut(ignoreFsync: false)
            let loop = try CrashLoop(settings: settings)
            let result = try loop.run()
            expectNothingLost(result, settings: settings)
            loop.directory.remove()
        }

        /// The negative control: the same power cut with a disk that ignores fsync. The
        /// check above must then find acknowledged messages missing, or it proves nothing.
        @Test(.timeLimit(.minutes(10))) func powerCutCheckDetectsADiskThatIgnoresFsync() throws {
            var settings = CrashLoop.Settings.fromEnvironment(roundsVariable: "POWERCUT_CONTROL_ROUNDS", defaultRounds: 1)
            settings.fault = .powerCut(ignoreFsync: true)
            settings.upstreamDuringRounds = false
            settings.roundLength = 1.0...2.0
            let loop = try CrashLoop(settings: settings)
            let result = try loop.run()
            #expect(result.acknowledged > 0)
            #expect(!result.lost.isEmpty, "a disk that drops every unsynced write lost nothing: the power-cut check cannot fail\n\(result.table)")
            print("negative control: \(result.lost.count) of \(result.acknowledged) acknowledged messages lost, as expected")
            loop.directory.remove()
        }

        /// The damage check itself: a copy cut short, one with a byte changed and one
        /// without a marker are flagged; an exact copy (after a `Received:` field) is not.
        @Test func theSinkCheckFlagsCutAndAlteredCopies() throws {
            let dir = try TemporaryDirectory(label: "collector")
            defer { dir.remove() }
            let received = Array("Received: from client.test\r\n\tby relay.test; now\r\n".utf8)
            let sent = crashMessage(marker: "m1")
            var altered = sent
            altered[altered.count - 10] ^= 0x20
            let copies: [[UInt8]] = [sent, Array(sent.dropLast(100)), altered, Array("Subject: none\r\n\r\nx\r\n".utf8)]
            for (i, copy) in copies.enumerated() {
                try TestFiles.write(received + copy, to: dir.path + "/00000\(i).eml")
                try TestFiles.write("{}", to: dir.path + "/00000\(i).json")
            }
            let found = SinkCollector(directory: dir.path).copies().sorted { $0.file < $1.file }
            #expect(found.map(\.intact) == [true, false, false, false])
            #expect(found.map(\.marker) == ["m1", "m1", "m1", nil])
        }

        private func expectNothingLost(_ result: CrashLoop.Result, settings: CrashLoop.Settings) {
            #expect(result.rounds.count == settings.rounds)
            #expect(result.acknowledged >= settings.rounds * 10, "too little load to prove anything:\n\(result.table)")
            #expect(result.lost.isEmpty, "acknowledged but never delivered: \(result.lost.prefix(10)) (seed \(settings.seed))\n\(result.table)")
            #expect(result.damaged.isEmpty, "copies at the sink that differ from what was sent: \(result.damaged.prefix(10)) (seed \(settings.seed))")
            #expect(result.queueEmpty, "the queue did not empty after the drain")
        }
    }
}
