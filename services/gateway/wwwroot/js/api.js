// The public API, as the signed-in user: every call sends the key as a bearer token and every failure
// becomes an ApiError carrying the problem+json the gateway answered with.

const KEY_ITEM = 'platform.apiKey';

// sessionStorage: the key lives as long as the tab, is never sent anywhere but this gateway's API, and
// is gone when the tab closes or the user signs out.
export const session = {
  get key() { return sessionStorage.getItem(KEY_ITEM); },
  signIn(key) { sessionStorage.setItem(KEY_ITEM, key); },
  signOut() { sessionStorage.removeItem(KEY_ITEM); },
};

export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.problem = problem;
  }
}

// The detail is written for people; validation problems put the specifics in `errors`.
function describe(status, problem) {
  if (!problem) return `The server answered ${status}.`;
  const parts = [problem.detail || problem.title || `The server answered ${status}.`];
  for (const [field, messages] of Object.entries(problem.errors || {})) {
    parts.push(`${field}: ${[].concat(messages).join(' ')}`);
  }
  return parts.join(' — ');
}

export async function problemOf(response) {
  let problem = null;
  try {
    if ((response.headers.get('content-type') || '').includes('json')) problem = await response.json();
  } catch {
    // A body that is not JSON: the status alone says what happened.
  }
  return new ApiError(response.status, problem);
}

function headersFor(extra) {
  const headers = new Headers(extra);
  if (session.key) headers.set('Authorization', `Bearer ${session.key}`);
  return headers;
}

/** fetch() against the API; JSON bodies for plain objects, bytes for Blobs and Files. Returns the Response. */
export async function request(path, { method = 'GET', body, headers, signal } = {}) {
  const all = headersFor(headers);
  let payload = body;
  if (body !== undefined && !(body instanceof Blob)) {
    all.set('Content-Type', 'application/json');
    payload = JSON.stringify(body);
  } else if (body instanceof Blob) {
    all.set('Content-Type', 'application/octet-stream');
  }
  let response;
  try {
    response = await fetch(path, { method, headers: all, body: payload, signal, cache: 'no-store' });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, { detail: 'The gateway cannot be reached; check the connection and try again.' });
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

/** The parsed JSON answer of a call. */
export async function api(path, options) {
  const response = await request(path, options);
  return response.status === 204 ? null : response.json();
}

/** Like api(), but null when the endpoint does not exist on this gateway (yet). */
export async function optional(path, options) {
  try {
    return await api(path, options);
  } catch (error) {
    if (error instanceof ApiError && (error.status === 404 || error.status === 405)) return null;
    throw error;
  }
}

/**
 * Reads a server-sent event stream with fetch(), because EventSource cannot send the Authorization header.
 * Calls onEvent({id, type, data}) per event; resolves when the server closes the stream.
 */
export async function readEvents(path, { onEvent, lastEventId, signal }) {
  const headers = { Accept: 'text/event-stream' };
  if (lastEventId != null) headers['Last-Event-ID'] = String(lastEventId);
  const response = await request(path, { headers, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { id: null, type: 'message', data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, '');
      buffer = buffer.slice(end + 1);
      if (line === '') {
        if (event.data.length > 0) onEvent({ id: event.id, type: event.type, data: event.data.join('\n') });
        event = { id: null, type: 'message', data: [] };
        continue;
      }
      if (line.startsWith(':')) continue; // a comment, such as the keep-alive
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'id') event.id = text;
      else if (field === 'event') event.type = text;
      else if (field === 'data') event.data.push(text);
    }
  }
}

/** Downloads a blob with the key (a plain link could not send it) and hands it to the browser as a file. */
export async function download(cid, filename) {
  const response = await request(`/v1/blobs/${encodeURIComponent(cid)}`);
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  // Some browsers read the URL after click() returns: release the bytes a while later, not at once.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
