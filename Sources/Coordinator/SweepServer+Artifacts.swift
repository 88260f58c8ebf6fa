import Foundation
import Protocol

/// The server's artifact traffic, through the `ArtifactService`.
extension SweepServer {
    func serve(_ request: ArtifactRequest, to peer: Data) {
        artifacts.serve(request, answer: { [self] chunk, bytes in
            send(peer, .artifactChunk(chunk, bytes))
            if chunk.total > 0 { options.monitor?.artifactBytes(bytes.count, sent: true) }
        }, missing: { [self] in
            // An empty chunk of an unknown total tells the worker the artifact is not here.
            log.warning("worker \(sessions[peer]?.name ?? "?") asked for artifact \(request.hash.prefix(12)), which is not in the store")
        })
    }

    func upload(_ chunk: ArtifactChunk, _ bytes: Data, from peer: Data) {
        guard let session = sessions[peer], !(scheduler.workers[session.name]?.running.isEmpty ?? true) else {
            // Chunks name no task: only a worker that holds one uploads (its checkpoints and
            // outputs). The first chunk is refused aloud, the rest of the artifact quietly.
            artifacts.drop(chunk.hash, from: peer)
            if chunk.offset == 0 && !lostRace.contains(peer) {
                refuse(peer, "an upload from a worker that holds no task", "an upload of artifact \(chunk.hash.prefix(12)) (it holds no task)", event: "artifact-refused")
            }
            return
        }
        scheduler.active(session.name, at: now())
        let name = session.name
        switch artifacts.receive(chunk, bytes, from: peer, lane: name, stored: { [self] failure in
            guard let failure else { return }
            log.warning("refused an upload from \(name): \(failure)")
            do { try journal.note("artifact-refused", ["hash": chunk.hash, "reason": "\(failure)"]) } catch { log.error("cannot journal a refused upload: \(error)") }
        }) {
        case .outOfOrder(let received):
            reject(peer, "artifact chunk out of order", "artifact \(chunk.hash.prefix(12)) chunk at \(chunk.offset) but \(received) bytes received")
        case .partial, .complete, .known:
            options.monitor?.artifactBytes(bytes.count, sent: false)
        }
    }
}
