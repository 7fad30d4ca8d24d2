// ngx-realtime-client: the browser side of ngx_realtime_module.
//
// One connection at a time to one URL (a WebSocket, or Server-Sent Events when
// the WebSocket cannot get through), reconnecting by itself with exponential
// backoff and jitter, resuming every group from the last message id it saw
// (the server replays what was missed: no gap, no duplicate), refreshing its
// JWT in-band before it expires, and never hammering the server with a token
// the server has refused. No dependencies; an ES module.

const RESERVED_EVENTS = new Set(["message", "state", "close"]);
const ENVELOPE_ID = /^([0-9a-f]{16}):(\d+)$/;

const DEFAULTS = {
  token: null,                  // async () => string | null, called before each connect and to refresh
  tokenParam: "token",          // the query parameter the token goes in
  transports: ["websocket", "eventsource"],
  backoff: { min: 500, max: 30000, factor: 2, jitter: 0.5 },
  refreshBefore: 30,            // seconds before the token's exp to refresh it
  resume: true,                 // send last_id on reconnect
  pauseWhenHidden: true,        // no reconnect attempts while the page is hidden
  lastIds: null,                // {group: "EPOCH:SEQ"} to resume from on the first connect
  autoConnect: true,            // connect in the constructor (after the current task's handlers are set)
  stableAfter: 5000,            // ms a connection must stay open to reset the backoff
  probeTimeout: 5000,           // ms for the HTTP probe after a failed handshake
  refreshTimeout: 10000,        // ms to wait for the server's answer to an in-band refresh
};

// "EPOCH:SEQ" -> [epoch, seq] (seq as a string: 64 bits do not fit a double).
function parseId(id) {
  const m = typeof id === "string" ? ENVELOPE_ID.exec(id) : null;
  return m ? [m[1], m[2]] : null;
}

// Compares two decimal strings without leading zeros by length, then text.
function seqCmp(a, b) {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

// The `exp` claim of a JWT, in seconds, or null (not a JWT, no exp). The
// signature is the server's business: the client only needs the timing.
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp : null;
  } catch (e) {
    return null;
  }
}

export class RealtimeClient {
  constructor(url, options = {}) {
    this._opts = { ...DEFAULTS, ...options, backoff: { ...DEFAULTS.backoff, ...(options.backoff || {}) } };
    const base = typeof location !== "undefined" ? location.href : undefined;
    this._url = new URL(url, base);           // throws on a bad URL, which is the caller's bug
    this._handlers = new Map();
    this._state = "closed";
    this._transport = null;
    this._lastIds = new Map(Object.entries(this._opts.lastIds || {}));
    this._conn = null;          // the current connection (see _openWith); null between connections
    this._timer = null;         // the pending reconnect / token poll
    this._refreshTimer = null;
    this._stableTimer = null;
    this._attempt = 0;          // failed attempts since the last good connection: the backoff's exponent
    this._token = null;         // the token of the current (or last) connection
    this._deadToken = undefined; // a token the server refused: never used again
    this._wanted = false;       // connect() was called and close() was not
    this.dropped = 0;           // duplicate messages dropped (the server should send none)

    if (typeof window !== "undefined" && window.addEventListener) {
      this._onWake = () => { if (!this._paused()) this._wake(); };
      window.addEventListener("online", this._onWake);
      if (typeof document !== "undefined") document.addEventListener("visibilitychange", this._onWake);
    }
    if (this._opts.autoConnect) queueMicrotask(() => { if (this._state === "closed" && !this._closedByUser) this.connect(); });
  }

  get state() { return this._state; }
  get transport() { return this._transport; }
  get lastIds() { return Object.fromEntries(this._lastIds); }

  on(event, fn) {
    if (!this._handlers.has(event)) this._handlers.set(event, new Set());
    this._handlers.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    const set = this._handlers.get(event);
    if (set) fn ? set.delete(fn) : set.clear();
    return this;
  }

  // Connects now, whatever the state: also the way out of "unauthorized" for
  // an app whose credentials changed without the token provider (a cookie).
  connect() {
    this._wanted = true;
    this._closedByUser = false;
    this._deadToken = undefined;
    this._attempt = 0;
    this._useSse = !this._opts.transports.includes("websocket");   // WebSocket first again
    this._clearTimer();
    this._drop();
    this._setState("connecting", {});
    this._open();
  }

  // Closes for good: no reconnect until connect() is called.
  close() {
    this._wanted = false;
    this._closedByUser = true;
    this._clearTimer();
    this._drop(1000);
    this._setState("closed", { byClient: true });
  }

  // Sends a message (an object is sent as JSON). False when there is no open
  // WebSocket: Server-Sent Events are receive-only, and nothing is queued.
  send(message) {
    const c = this._conn;
    if (!c || !c.open || c.kind !== "websocket") return false;
    c.ws.send(typeof message === "string" ? message : JSON.stringify(message));
    return true;
  }

  // ------------------------------------------------------------------ events

  _emit(event, ...args) {
    for (const fn of [...(this._handlers.get(event) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        // a handler's bug must not break the connection's bookkeeping
        setTimeout(() => { throw e; });
      }
    }
  }

  _setState(state, detail) {
    if (state === this._state && state !== "reconnecting") return;
    this._state = state;
    this._emit("state", state, detail || {});
  }

  // ------------------------------------------------------------------ URLs

  _urlFor(kind, token) {
    const u = new URL(this._url.href);
    if (kind === "websocket") u.protocol = u.protocol.replace(/^http/, "ws");
    else u.protocol = u.protocol.replace(/^ws/, "http");
    if (token) u.searchParams.set(this._opts.tokenParam, token);
    if (this._opts.resume && this._lastIds.size > 0) {
      // G1@EPOCH:SEQ,G2@EPOCH:SEQ; searchParams percent-encodes "@", ":" and ","
      u.searchParams.set("last_id", [...this._lastIds].map(([g, id]) => g + "@" + id).join(","));
    }
    return u.href;
  }

  // ------------------------------------------------------------------ connecting

  _paused() {
    if (typeof navigator !== "undefined" && navigator.onLine === false) return true;
    return this._opts.pauseWhenHidden && typeof document !== "undefined" &&
           document.visibilityState === "hidden";
  }

  // Back online or visible: a connection that was waiting goes now.
  _wake() {
    if (!this._wanted || this._conn) return;
    if (this._state === "paused" || this._state === "reconnecting") {
      this._clearTimer();
      this._open();
    }
  }

  async _getToken() {
    return this._opts.token ? await this._opts.token() : null;
  }

  // Asks the token provider (unless token is given), then opens a connection.
  async _open(token) {
    if (!this._wanted) return;
    if (this._paused()) return this._setState("paused", {});
    const ticket = this._ticket = {};
    if (token === undefined) {
      try {
        token = await this._getToken();
      } catch (e) {
        if (ticket === this._ticket) this._retry({ error: String(e) });
        return;
      }
      if (ticket !== this._ticket || !this._wanted) return;   // close() or connect() meanwhile
    }
    if (token !== null && token === this._deadToken) return this._unauthorized({ sameToken: true });
    this._openWith(token);
  }

  _openWith(token) {
    this._token = token;
    const kind = this._useSse ? "eventsource" : "websocket";
    const url = this._urlFor(kind, token);
    const c = { kind, url, token, open: false };
    this._conn = c;
    this._transport = kind;
    if (this._state !== "connecting") this._setState("connecting", { transport: kind });
    if (kind === "websocket") {
      const ws = c.ws = new WebSocket(url);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => c === this._conn && this._opened(c);
      ws.onmessage = (ev) => c === this._conn && this._frame(ev.data);
      ws.onclose = (ev) => c === this._conn && this._closed(c, ev.code, ev.reason);
    } else {
      const es = c.es = new EventSource(url);
      es.onopen = () => c === this._conn && this._opened(c);
      es.onmessage = (ev) => c === this._conn && this._frame(ev.data);
      // EventSource would reconnect by itself with Last-Event-ID, which names
      // one group; ours resumes every group, with our backoff.
      es.onerror = () => { if (c === this._conn) { es.close(); this._closed(c, 1006, ""); } };
    }
  }

  _opened(c) {
    c.open = true;
    this._setState("open", { transport: c.kind });
    this._stableTimer = setTimeout(() => { this._attempt = 0; }, this._opts.stableAfter);
    this._scheduleRefresh(c.token);
  }

  // The connection is gone (closed by the server, the network, or refused).
  _closed(c, code, reason) {
    this._drop();
    this._emit("close", { code, reason, transport: c.kind, wasOpen: c.open });
    if (!this._wanted) return;
    if (!c.open) return this._refused(c);
    if (code === 1012) {
      // service restart (reload): the new workers are there; spread the
      // clients over a second, and a reload is no failure of ours
      return this._schedule(Math.random() * 1000, { code, reason });
    }
    if (code === 4003) {
      // token expired: that token is dead; a new one from the provider
      // reconnects at once (resume makes it lossless), the same one makes
      // us wait for another
      this._deadToken = c.token;
      this._setState("connecting", { code });
      return this._open();
    }
    this._retry({ code, reason });
  }

  // A handshake failed before it opened. Browsers hide the HTTP status of a
  // refused WebSocket (and EventSource), so ask the same URL over HTTP.
  async _refused(c) {
    const ticket = this._ticket = {};
    const status = await this._probe(c.url.replace(/^ws/, "http"));
    if (ticket !== this._ticket || !this._wanted) return;
    const detail = { transport: c.kind, status: status.status };
    if (status.status === 401 || status.status === 403) {
      this._deadToken = c.token;
      return this._unauthorized(detail);
    }
    if (status.sse && c.kind === "websocket" && this._opts.transports.includes("eventsource")) {
      // the server speaks SSE here and the WebSocket did not get through: a
      // proxy on the way that does not pass Upgrade
      this._useSse = true;
      this._setState("connecting", detail);
      return this._openWith(c.token);
    }
    this._retry(detail);     // 426, 429, 503, network error, anything else
  }

  // HEAD url: the module answers with the status and Content-Type a GET
  // would get, without opening a stream (no group joined, no presence flap).
  async _probe(url) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this._opts.probeTimeout);
    try {
      const res = await fetch(url, { method: "HEAD", credentials: "same-origin", cache: "no-store",
                                     signal: ctl.signal, headers: { Accept: "text/event-stream" } });
      const type = res.headers.get("Content-Type") || "";
      return { status: res.status, sse: res.status === 200 && type.startsWith("text/event-stream") };
    } catch (e) {
      return { status: 0, sse: false };
    } finally {
      clearTimeout(timer);
      ctl.abort();
    }
  }

  _unauthorized(detail) {
    this._setState("unauthorized", detail);
    // Without a provider nothing changes by itself: the app calls connect().
    // With one, ask it again (cheap, local) until it yields another token.
    if (this._opts.token) this._schedule(this._delay(), detail, true);
  }

  _retry(detail) {
    this._schedule(this._delay(), detail);
  }

  _delay() {
    const { min, max, factor, jitter } = this._opts.backoff;
    const d = Math.min(max, min * factor ** this._attempt++);
    return d * (1 - jitter * Math.random());
  }

  _schedule(delay, detail, pollToken = false) {
    this._clearTimer();
    if (!pollToken) {
      if (this._paused()) return this._setState("paused", detail);
      this._setState("reconnecting", { ...detail, delay: Math.round(delay) });
    }
    this._timer = setTimeout(() => {
      this._timer = null;
      if (!pollToken) return this._open();
      this._pollToken(detail);
    }, delay);
  }

  async _pollToken(detail) {
    const ticket = this._ticket = {};
    let token;
    try {
      token = await this._getToken();
    } catch (e) {
      token = this._deadToken;
    }
    if (ticket !== this._ticket || !this._wanted) return;
    if (token === this._deadToken) return this._schedule(this._delay(), detail, true);
    this._setState("connecting", {});
    this._open(token);
  }

  _clearTimer() {
    clearTimeout(this._timer);
    this._timer = null;
    this._ticket = null;       // a provider call in flight is ignored when it answers
  }

  // Forgets the current connection (closing it when code is given or it is open).
  _drop(code) {
    const c = this._conn;
    this._conn = null;
    clearTimeout(this._refreshTimer);
    clearTimeout(this._stableTimer);
    if (!c) return;
    if (c.ws) {
      c.ws.onopen = c.ws.onmessage = c.ws.onclose = null;
      if (c.ws.readyState <= 1) c.ws.close(code || 1000);
    }
    if (c.es) c.es.close();
  }

  // ------------------------------------------------------------------ tokens

  _scheduleRefresh(token) {
    clearTimeout(this._refreshTimer);
    const exp = token && this._opts.token ? tokenExpiry(token) : null;
    if (exp === null) return;
    const now = Date.now() / 1000;
    // refreshBefore seconds ahead, but for a short token no sooner than
    // halfway to its expiry, and never in a tight loop
    const at = Math.max(exp - this._opts.refreshBefore, now + (exp - now) / 2, now + 1);
    // setTimeout fires at once past 2^31-1 ms (24.8 days): a long-lived token
    // is looked at again then
    this._refreshTimer = setTimeout(() => this._refresh(), Math.min((at - now) * 1000, 2 ** 31 - 1));
  }

  async _refresh() {
    const c = this._conn;
    if (!c || !c.open) return;
    let token;
    try {
      token = await this._opts.token();
    } catch (e) {
      token = null;
    }
    if (c !== this._conn) return;
    if (!token || token === c.token) {
      // nothing new yet: ask again a little later (the server closes with
      // 4003 at exp, which asks once more)
      this._refreshTimer = setTimeout(() => this._refresh(), 2000);
      return;
    }
    if (c.kind !== "websocket") return this._replace(token);   // SSE cannot speak: reconnect
    c.pendingToken = token;
    this.send({ type: "refresh", token });
    this._refreshTimer = setTimeout(() => c === this._conn && this._replace(token), this._opts.refreshTimeout);
  }

  // The server's answer to our refresh.
  _refreshAnswer(m) {
    const c = this._conn;
    if (!c || !c.pendingToken) return;
    const token = c.pendingToken;
    c.pendingToken = null;
    clearTimeout(this._refreshTimer);
    if (m.ok) {
      c.token = this._token = token;
      this._scheduleRefresh(token);
    } else {
      this._replace(token);    // refused in-band: a new connection with it, resumed
    }
  }

  // A new connection with token in place of the current one, now.
  _replace(token) {
    this._drop(1000);
    this._setState("connecting", { refresh: true });
    this._openWith(token);
  }

  // ------------------------------------------------------------------ messages

  _frame(raw) {
    if (typeof raw !== "string") return this._deliver(raw, {});
    let m;
    try {
      m = JSON.parse(raw);
    } catch (e) {
      return this._deliver(raw, {});           // a bare text payload
    }
    if (m !== null && typeof m === "object" && !Array.isArray(m)) {
      const keys = Object.keys(m);
      const id = keys.length === 3 && typeof m.group === "string" && "data" in m ? parseId(m.id) : null;
      // an envelope without id: a message nobody numbered (a cluster group without history)
      if (keys.length === 2 && typeof m.group === "string" && "data" in m) {
        return this._deliver(m.data, { group: m.group });
      }
      if (id) {
        const last = parseId(this._lastIds.get(m.group));
        // same history and not newer: seen already (a new epoch is a new history)
        if (last && last[0] === id[0] && seqCmp(id[1], last[1]) <= 0) {
          this.dropped++;
          return;
        }
        this._lastIds.set(m.group, m.id);
        return this._deliver(m.data, { group: m.group, id: m.id });
      }
      if (m.type === "refresh") this._refreshAnswer(m);
    }
    this._deliver(m, {});
  }

  _deliver(data, meta) {
    // a connection that delivers works: the next failure starts from the shortest delay
    this._attempt = 0;
    this._emit("message", data, meta);
    if (data !== null && typeof data === "object" && typeof data.type === "string" &&
        !RESERVED_EVENTS.has(data.type)) {
      this._emit(data.type, data, meta);
    }
  }
}
