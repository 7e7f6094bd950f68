// Tollgate console. Checks a decision's ledger proof in this browser with WebCrypto, so
// the "verified" mark never takes the server's word for it (docs/console.md):
//   1. SHA-256 of the entry's canonical bytes is its entry_hash,
//   2. the entry is this decision (decision_id and seq),
//   3. the RFC 6962 leaf hash SHA-256(0x00 || entry_hash), walked up the inclusion
//      proof (RFC 9162 section 2.1.3.2), gives the checkpoint's root at its tree size,
//   4. the checkpoint (a C2SP signed note) carries a valid Ed25519 signature by the
//      key the server publishes at /v1/signing-keys.
// Text reaches the page through textContent only.
(function () {
  'use strict';

  var enc = new TextEncoder();

  function concat() {
    var n = 0, i, out, at = 0;
    for (i = 0; i < arguments.length; i++) n += arguments[i].length;
    out = new Uint8Array(n);
    for (i = 0; i < arguments.length; i++) { out.set(arguments[i], at); at += arguments[i].length; }
    return out;
  }

  function toHex(bytes) {
    return Array.prototype.map.call(bytes, function (b) { return ('0' + b.toString(16)).slice(-2); }).join('');
  }

  function fromHex(s) {
    if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error('not hex: ' + s.slice(0, 16));
    var out = new Uint8Array(s.length / 2);
    for (var i = 0; i < out.length; i++) out[i] = parseInt(s.substr(i * 2, 2), 16);
    return out;
  }

  function fromB64(s) {
    var bin = atob(s), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  function same(a, b) {
    if (a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  }

  function leafHash(data) { return sha256(concat(new Uint8Array([0]), data)); }
  function nodeHash(l, r) { return sha256(concat(new Uint8Array([1]), l, r)); }

  // RFC 9162 2.1.3.2: the root the proof leads to from `leaf` at `index` of `size`.
  async function rootFromInclusion(leaf, index, size, proof) {
    if (index >= size) throw new Error('the entry is beyond the checkpoint');
    var f = index, s = size - 1n, r = leaf;
    for (var i = 0; i < proof.length; i++) {
      if (s === 0n) throw new Error('the proof is too long');
      if ((f & 1n) === 1n || f === s) {
        r = await nodeHash(proof[i], r);
        while ((f & 1n) === 0n && f !== 0n) { f >>= 1n; s >>= 1n; }
      } else {
        r = await nodeHash(r, proof[i]);
      }
      f >>= 1n; s >>= 1n;
    }
    if (s !== 0n) throw new Error('the proof is too short');
    return r;
  }

  function parseCheckpoint(text) {
    var cut = text.indexOf('\n\n');
    if (cut < 0) throw new Error('the checkpoint has no signature block');
    var body = text.slice(0, cut + 1);
    var lines = body.split('\n');
    if (lines.length < 4 || !/^[0-9]+$/.test(lines[1])) throw new Error('malformed checkpoint');
    var sigs = text.slice(cut + 2).split('\n').filter(function (l) { return l.length > 0; }).map(function (l) {
      var m = /^\u2014 (\S+) (\S+)$/.exec(l);
      if (!m) throw new Error('malformed signature line');
      return { name: m[1], blob: fromB64(m[2]) };
    });
    return { body: body, origin: lines[0], size: BigInt(lines[1]), root: fromB64(lines[2]), sigs: sigs };
  }

  // A signed-note verifier key: name+hex(key id)+base64(0x01 || Ed25519 key).
  async function parseVkey(v) {
    // name+id+key: the name and id have no '+', the base64 key may.
    var a = v.indexOf('+'), b = a < 0 ? -1 : v.indexOf('+', a + 1);
    if (a < 0 || b < 0) throw new Error('malformed verifier key');
    var parts = [v.slice(0, a), v.slice(a + 1, b), v.slice(b + 1)];
    var blob = fromB64(parts[2]);
    if (blob.length !== 33 || blob[0] !== 1) throw new Error('not an Ed25519 verifier key');
    var key = blob.slice(1);
    var id = (await sha256(concat(enc.encode(parts[0]), new Uint8Array([0x0a, 0x01]), key))).slice(0, 4);
    if (toHex(id) !== parts[1]) throw new Error('the verifier key id does not match its key');
    return { name: parts[0], id: id, key: key };
  }

  function check(list, ok, text) {
    var li = document.createElement('li');
    li.className = ok ? 'ok' : 'bad';
    li.textContent = (ok ? '\u2713 ' : '\u2717 ') + text;
    list.appendChild(li);
    if (!ok) throw new Error(text);
  }

  async function verifyProof(section) {
    var status = document.getElementById('proof-status');
    var list = document.getElementById('proof-checks');
    try {
      var res = await fetch(section.getAttribute('data-proof-url'), { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      if (!res.ok) throw new Error('the proof could not be fetched (' + res.status + ')');
      var p = await res.json();
      var wanted = decodeURIComponent(location.pathname.split('/').pop());

      var canonical = fromB64(p.canonical);
      var entryHash = fromHex(p.entry_hash);
      check(list, same(await sha256(canonical), entryHash), 'the entry hashes to its entry_hash ' + p.entry_hash.slice(0, 16) + '\u2026');

      var entry = JSON.parse(new TextDecoder().decode(canonical));
      check(list, entry.body && entry.body.decision_id === wanted && entry.seq === p.seq,
        'the entry is decision ' + wanted + ' at seq ' + p.seq);

      var cp = parseCheckpoint(p.checkpoint);
      var proof = p.inclusion_proof.map(fromHex);
      var root = await rootFromInclusion(await leafHash(entryHash), BigInt(p.seq), cp.size, proof);
      check(list, same(root, cp.root), 'the inclusion proof (' + proof.length + ' hashes) leads to the checkpoint root of ' + cp.size + ' entries');

      var keysRes = await fetch('/v1/signing-keys', { headers: { Accept: 'application/json' } });
      if (!keysRes.ok) throw new Error('the published keys could not be fetched');
      var published = (await keysRes.json()).keys || [];
      var signedBy = null;
      for (var i = 0; i < published.length && !signedBy; i++) {
        var vk = await parseVkey(published[i].note_verifier);
        for (var j = 0; j < cp.sigs.length; j++) {
          var s = cp.sigs[j];
          if (s.name !== vk.name || s.blob.length !== 68 || !same(s.blob.slice(0, 4), vk.id)) continue;
          var key = await crypto.subtle.importKey('raw', vk.key, { name: 'Ed25519' }, false, ['verify']);
          if (await crypto.subtle.verify({ name: 'Ed25519' }, key, s.blob.slice(4), enc.encode(cp.body))) {
            signedBy = vk.name;
          }
        }
      }
      check(list, signedBy !== null, 'the checkpoint is signed by the published key' + (signedBy ? ' \u201c' + signedBy + '\u201d' : ''));

      status.textContent = 'verified';
      status.className = 'proof-status ok';
    } catch (e) {
      status.textContent = 'NOT verified: ' + (e && e.message ? e.message : String(e));
      status.className = 'proof-status bad';
    }
  }

  function start() {
    var section = document.getElementById('proof');
    if (section) verifyProof(section);
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
