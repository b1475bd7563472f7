import { ApiError } from '../errors.js';
import type { PeerNow } from '../federation/peer-directory.js';
import { flavourTraits } from '../federation/peers.js';

/** A repair an operator asks for must name an active memfed peer (the admin API and `memfed repair` alike). */
export function checkRepairPeer(peers: ReadonlyMap<string, PeerNow>, id: string): PeerNow {
  const peer = peers.get(id);
  if (!peer) throw new ApiError(400, 'UNKNOWN_PEER', `peer ${id} is not configured (memfed peers list)`);
  if (peer.state !== 'active') throw new ApiError(409, 'PEER_NOT_ACTIVE', `peer ${id} is ${peer.state}: resume it first (memfed peers resume --id ${id})`);
  if (!flavourTraits(peer.flavour).antiEntropy) throw new ApiError(409, 'PEER_NO_REPAIR', `peer ${id} is ${peer.flavour}: it has no anti-entropy repair endpoint (memfed peers only)`);
  return peer;
}
