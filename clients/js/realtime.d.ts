// Types for realtime.js (ngx-realtime-client).

export type State = "connecting" | "open" | "reconnecting" | "paused" | "unauthorized" | "closed";
export type Transport = "websocket" | "eventsource";

export interface BackoffOptions {
  /** First delay, ms (default 500). */
  min?: number;
  /** Longest delay, ms (default 30000). */
  max?: number;
  /** Growth per failed attempt (default 2). */
  factor?: number;
  /** Fraction of the delay taken off at random, 0..1 (default 0.5). */
  jitter?: number;
}

export interface RealtimeOptions {
  /** Called before each connection and before each refresh; null: no token (cookies). */
  token?: (() => string | null | Promise<string | null>) | null;
  /** Query parameter the token goes in (default "token"). */
  tokenParam?: string;
  /** Transports in order of preference (default ["websocket", "eventsource"]). */
  transports?: Transport[];
  backoff?: BackoffOptions;
  /** Seconds before the token's exp to refresh it (default 30). */
  refreshBefore?: number;
  /** Send last_id on reconnect so the server replays what was missed (default true). */
  resume?: boolean;
  /** No reconnect attempts while the page is hidden (default true); offline always pauses. */
  pauseWhenHidden?: boolean;
  /** Where to resume from on the first connection: {group: "EPOCH:SEQ"}. */
  lastIds?: Record<string, string> | null;
  /** Connect at once (default true); else call connect(). */
  autoConnect?: boolean;
  /** ms a connection must stay open to reset the backoff (default 5000). */
  stableAfter?: number;
  /** ms for the HTTP probe after a failed handshake (default 5000). */
  probeTimeout?: number;
  /** ms to wait for the answer to an in-band refresh (default 10000). */
  refreshTimeout?: number;
}

/** Where a message came from: the envelope's group and id; {} without an envelope. */
export interface MessageMeta {
  group?: string;
  id?: string;
}

export interface StateDetail {
  transport?: Transport;
  /** Close code that led to this state. */
  code?: number;
  reason?: string;
  /** HTTP status of the probe after a refused handshake (0: network error). */
  status?: number;
  /** ms until the next attempt ("reconnecting"). */
  delay?: number;
  [key: string]: unknown;
}

export interface CloseInfo {
  code: number;
  reason: string;
  transport: Transport;
  /** Whether the connection had opened (false: a refused handshake). */
  wasOpen: boolean;
}

export interface RecoveryNotice {
  type: "recovery";
  group: string;
  recovered: false;
}

export class RealtimeClient {
  constructor(url: string | URL, options?: RealtimeOptions);

  readonly state: State;
  /** The current or last connection's transport, null before the first one. */
  readonly transport: Transport | null;
  /** The last message id seen per group (a copy). */
  readonly lastIds: Record<string, string>;
  /** Duplicate messages dropped (an id not newer than the last one of its group). */
  readonly dropped: number;

  on(event: "message", fn: (data: any, meta: MessageMeta) => void): this;
  on(event: "state", fn: (state: State, detail: StateDetail) => void): this;
  on(event: "close", fn: (info: CloseInfo) => void): this;
  on(event: "recovery", fn: (notice: RecoveryNotice, meta: MessageMeta) => void): this;
  /** Messages whose data is an object with this "type" (other than message/state/close). */
  on(event: string, fn: (data: any, meta: MessageMeta) => void): this;
  off(event: string, fn?: (...args: any[]) => void): this;

  connect(): void;
  close(): void;
  /** Sends an object as JSON (a string as is); false when not open over a WebSocket. */
  send(message: unknown): boolean;
}

/** The exp claim (seconds) of a JWT, or null. */
export function tokenExpiry(token: string): number | null;
