// A completed job's signed receipt (GET /v1/jobs/{id}/receipt), checked in the browser against the key the
// platform publishes (GET /v1/receipts/key), and the job's provenance as the receipt states it: inputs, the
// accepted attempts and who signed them, outputs. `./platform verify FILE` checks the same file offline.
import { api, request, ApiError } from './api.js';
import { $, el, setText, formatCredits, formatTime } from './ui.js';

/**
 * Fetches the receipt (waiting out "receipt-pending" while the payment settles) and shows it. Returns the check's
 * outcome: 'valid', 'invalid', 'unchecked' (no WebCrypto here) or 'none' (the job has no receipt).
 */
export async function showReceipt(jobId, signal) {
  // The receipt states the job's cost: until the payment has settled (the job record has its cost) there is none,
  // and asking would only be told so.
  for (let attempt = 1; ; attempt++) {
    const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
    if (job.status !== 'completed') return hide();
    if (job.cost != null) break;
    if (attempt === 30) return hide();
    await new Promise(resolve => setTimeout(resolve, Math.min(200 * attempt, 1000)));
  }
  let text = null;
  for (let attempt = 1; attempt <= 20 && text === null; attempt++) {
    try {
      const response = await request(`/v1/jobs/${encodeURIComponent(jobId)}/receipt`, { signal });
      text = await response.text();
    } catch (error) {
      // The payment may still be settling: wait for it. Any other 409 (no key or metrics recorded for an old job)
      // means there is no receipt to show; anything else is an error.
      if (!(error instanceof ApiError) || error.status !== 409) throw error;
      if (!String(error.problem?.type).endsWith(':receipt-pending')) return hide();
      await new Promise(resolve => setTimeout(resolve, Math.min(200 * attempt, 1000)));
    }
  }
  if (text === null || signal.aborted) return hide();
  const signed = JSON.parse(text);
  const key = await api('/v1/receipts/key', { signal });
  // What is checked and shown is the receipt member's own text, not whichever duplicate JSON.parse kept.
  const member = receiptMember(text);
  const outcome = await check(member, signed, key);
  const receipt = member === null ? signed.receipt : JSON.parse(member);
  const fingerprints = await Promise.all(receipt.attempts.map(a => fingerprint(a.workerPublicKey)));
  // Another job may have been opened while the checks ran: its page is not this receipt's.
  if (signal.aborted) return 'none';
  render(jobId, text, receipt, key, outcome, fingerprints);
  return outcome;
}

export function hideReceipt() {
  hide();
  const link = $('#receipt-download');
  if (link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
  link.removeAttribute('href');
}

function hide() {
  $('#job-receipt').hidden = true;
  $('#job-provenance').hidden = true;
  return 'none';
}

function render(jobId, text, receipt, key, outcome, fingerprints) {
  const status = $('#receipt-status');
  status.dataset.verified = outcome;
  status.className = `receipt-status ${outcome === 'valid' ? 'ok' : outcome === 'invalid' ? 'bad' : ''}`;
  status.textContent = {
    valid: `Signature valid: signed by the platform key ${key.fingerprint}, the key this network publishes.`,
    invalid: 'Signature INVALID: this receipt was not signed by the key this network publishes, or was changed after signing.',
    unchecked: 'Signature not checked: this browser offers no WebCrypto on a page served over plain HTTP. Download it and run ./platform verify.',
  }[outcome];
  const spotChecked = receipt.attempts.filter(a => a.spotCheck).length;
  const how = receipt.attempts.length > 1
    ? `${receipt.attempts.length} results from different operators agreed${spotChecked ? ` (${spotChecked} a spot check)` : ''}`
    : 'one result, accepted on the node\'s standing (not spot-checked)';
  $('#receipt-facts').replaceChildren(
    el('dt', {}, 'Verified by'), el('dd', { dataset: { results: String(receipt.attempts.length) } }, how),
    el('dt', {}, 'Kernel'), el('dd', {}, `${receipt.kernel} ${receipt.kernelVersion}`),
    el('dt', {}, 'Cost'), el('dd', {}, formatCredits(receipt.cost)),
    el('dt', {}, 'Issued'), el('dd', {}, formatTime(receipt.issuedAt)));
  const link = $('#receipt-download');
  if (link.href.startsWith('blob:')) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
  link.download = `${jobId}.receipt.json`;
  $('#job-receipt').hidden = false;

  // Inputs, then each accepted attempt with the worker and key that signed its result, then the outputs.
  const cids = map => Object.entries(map || {}).map(([name, cid]) => el('li', { dataset: { cid } }, `${name}: `, el('code', { class: 'cid' }, cid)));
  $('#provenance-chain').replaceChildren(
    el('li', { dataset: { step: 'inputs' } }, el('strong', {}, 'Inputs'), el('ul', {}, cids(receipt.inputs))),
    el('li', { dataset: { step: 'attempts' } }, el('strong', {}, 'Computed by'), el('ul', {}, receipt.attempts.map((a, i) =>
      el('li', { dataset: { attempt: a.attemptId } }, 'worker ', el('code', {}, a.workerId), ', attempt ', el('code', {}, a.attemptId),
        a.spotCheck ? ' (spot check)' : '', ` on ${a.device}, result signed by key `, el('code', { title: a.workerPublicKey }, fingerprints[i]))))),
    el('li', { dataset: { step: 'outputs' } }, el('strong', {}, 'Outputs'), el('ul', {}, cids(receipt.outputs))));
  $('#job-provenance').hidden = false;
}

// As the platform prints keys: "sha256:" and the first 16 hex digits of the SHA-256 of the key's bytes.
async function fingerprint(publicKey) {
  if (!globalThis.crypto?.subtle) return `${publicKey.slice(0, 16)}…`;
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', base64Bytes(publicKey)));
  return `sha256:${[...digest.subarray(0, 8)].map(b => b.toString(16).padStart(2, '0')).join('')}`;
}

/**
 * Checks the platform's signature over the receipt's bytes. The file is the signed receipt in one fixed form, and
 * the platform signed the `receipt` member serialized the same way on its own: that member's text from the file,
 * two spaces less indented, is exactly those bytes (JSON strings hold no raw line breaks).
 */
async function check(member, signed, key) {
  if (!globalThis.crypto?.subtle) return 'unchecked';
  if (signed.platformKey !== key.publicKey) return 'invalid';
  if (member === null) return 'invalid';
  try {
    const publicKey = await crypto.subtle.importKey('spki', base64Bytes(key.publicKey), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const signature = derToRaw(base64Bytes(signed.platformSignature));
    if (signature === null) return 'invalid';
    const ok = await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, signature, new TextEncoder().encode(member.replaceAll('\n  ', '\n')));
    return ok ? 'valid' : 'invalid';
  } catch {
    return 'invalid';
  }
}

// The text of the top-level "receipt" object: from its opening brace to the matching one, strings skipped.
function receiptMember(text) {
  const start = text.indexOf('{', text.indexOf('"receipt": '));
  if (start < 0) return null;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  return null;
}

function base64Bytes(base64) {
  return Uint8Array.from(atob(base64), c => c.charCodeAt(0));
}

// WebCrypto takes ECDSA signatures as r || s (32 bytes each for P-256); the platform signs in DER: SEQUENCE { INTEGER r, INTEGER s }.
function derToRaw(der) {
  if (der[0] !== 0x30) return null;
  let offset = 2;
  const raw = new Uint8Array(64);
  for (let part = 0; part < 2; part++) {
    if (der[offset] !== 0x02) return null;
    let length = der[offset + 1];
    let from = offset + 2;
    offset = from + length;
    while (length > 32 && der[from] === 0) {
      from++;
      length--;
    }
    if (length > 32) return null;
    raw.set(der.subarray(from, from + length), part * 32 + 32 - length);
  }
  return raw;
}
