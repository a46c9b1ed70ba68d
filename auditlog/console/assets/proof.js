// proof.js checks, in the browser, that an entry is in the audit log's
// Merkle tree: it reads the latest checkpoint (GET /checkpoint, a C2SP
// tlog-checkpoint: origin, tree size, base64 root hash), asks for the
// entry's inclusion proof against that size (GET /logs/{id}/proof?size=N:
// leafIndex, leafHash, the proof's hashes, treeSize), recomputes the root
// from them with WebCrypto's SHA-256 (RFC 6962 hashing, RFC 9162's
// verification algorithm) and compares. It trusts nothing the proof says
// about the root; it does not recompute the leaf hash from the entry.

// The outcomes.
export const VERIFIED = 'verified';
export const FAILED = 'failed';
export const UNAVAILABLE = 'unavailable'; // the log serves no proofs
export const PENDING = 'pending'; // not in a checkpoint yet

// parseCheckpoint reads the body of a C2SP checkpoint note.
export function parseCheckpoint(text) {
  const lines = text.split('\n');
  const size = Number(lines[1]);
  if (lines.length < 3 || !lines[0] || !/^[0-9]+$/.test(lines[1] || '') || !Number.isSafeInteger(size)) {
    throw new Error('not a checkpoint');
  }
  return {origin: lines[0], size, root: decodeHash(lines[2])};
}

// decodeHash reads a SHA-256 hash written in base64 (44 characters) or
// hex (64).
export function decodeHash(s) {
  if (typeof s !== 'string') throw new Error('a hash must be a string');
  let bytes;
  if (/^[0-9a-fA-F]{64}$/.test(s)) {
    bytes = new Uint8Array(32);
    for (let i = 0; i < 32; i++) bytes[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  } else {
    const bin = atob(s);
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }
  if (bytes.length !== 32) throw new Error('a hash has 32 bytes');
  return bytes;
}

async function sha256(...parts) {
  const len = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    buf.set(p, off);
    off += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

const NODE = new Uint8Array([1]);

// rootFromInclusion computes the root of a tree of treeSize leaves from
// the hash of leaf leafIndex and its inclusion proof (RFC 9162, 2.1.3.2).
// It throws when the proof cannot belong to such a tree.
export async function rootFromInclusion(leafIndex, treeSize, leafHash, proof) {
  if (!(Number.isSafeInteger(leafIndex) && Number.isSafeInteger(treeSize) && leafIndex >= 0 && leafIndex < treeSize)) {
    throw new Error(`leaf ${leafIndex} is not in a tree of ${treeSize}`);
  }
  // BigInt: leaf indexes pass 2^31, where JavaScript's bit operators stop.
  let fn = BigInt(leafIndex);
  let sn = BigInt(treeSize - 1);
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0n) throw new Error('the proof is too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = await sha256(NODE, p, r);
      if ((fn & 1n) === 0n) {
        while ((fn & 1n) === 0n && fn !== 0n) {
          fn >>= 1n;
          sn >>= 1n;
        }
      }
    } else {
      r = await sha256(NODE, r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('the proof is too short');
  return r;
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// checkInclusion checks entry id's inclusion proof against the latest
// checkpoint. get(path, opts) fetches with the user's token, as api.get:
// it resolves to the Response for a status in opts.ok. It resolves to
// {state, message} and never throws.
export async function checkInclusion(id, get) {
  let cp;
  try {
    const resp = await get('/checkpoint', {accept: 'text/plain', ok: [200, 404]});
    if (resp.status === 404) return {state: UNAVAILABLE, message: 'integrity not available: this audit log serves no checkpoints'};
    cp = parseCheckpoint(await resp.text());
  } catch (e) {
    return {state: UNAVAILABLE, message: 'integrity not available: ' + e.message};
  }
  if (cp.size === 0) return {state: PENDING, message: 'not in a checkpoint yet'};
  let proof;
  try {
    const resp = await get(`/logs/${encodeURIComponent(id)}/proof?size=${cp.size}`, {ok: [200, 404, 409, 425]});
    if (resp.status === 404) {
      return {state: PENDING, message: 'no inclusion proof for this entry at checkpoint ' + cp.size + ' (not yet integrated, or no proof route)'};
    }
    if (resp.status !== 200) return {state: PENDING, message: 'not in checkpoint ' + cp.size + ' yet'};
    proof = await resp.json();
  } catch (e) {
    return {state: UNAVAILABLE, message: 'integrity not available: ' + e.message};
  }
  try {
    const hashes = (proof.proof ?? proof.hashes ?? []).map(decodeHash);
    if (proof.treeSize !== undefined && proof.treeSize !== cp.size) {
      return {state: FAILED, message: `failed: the proof is for a tree of ${proof.treeSize}, the checkpoint has ${cp.size}`};
    }
    const root = await rootFromInclusion(proof.leafIndex, cp.size, decodeHash(proof.leafHash), hashes);
    if (!equal(root, cp.root)) {
      return {state: FAILED, message: `failed: the proof does not lead to the root of checkpoint ${cp.size} of ${cp.origin}`};
    }
    return {state: VERIFIED, message: `verified: leaf ${proof.leafIndex} of checkpoint ${cp.size} of ${cp.origin}`};
  } catch (e) {
    return {state: FAILED, message: 'failed: ' + e.message};
  }
}
