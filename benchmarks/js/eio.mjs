// A minimal Engine.IO v4 / Socket.IO v5 client over a raw `ws` WebSocket.
//
// The load generator speaks the protocol itself instead of using socket.io-client
// because the generator must not be the bottleneck: socket.io-client adds an emitter
// layer, reconnection machinery and per-packet objects that cost more per message than
// the servers we measure. What this client understands is exactly what the benchmark
// needs: the websocket transport opened directly (no polling, no upgrade), text packets
// only (no binary attachments), namespace connect, events, acks, ping/pong.
// `loadgen.mjs check` proves its view of a conversation equals socket.io-client's.
import WebSocket from "ws";

// Engine.IO packet types (first character of each websocket text frame).
const EIO_OPEN = "0";
const EIO_CLOSE = "1";
const EIO_PING = "2";
const EIO_MESSAGE = "4";
const EIO_NOOP = "6";

// How a tick event to the main namespace without an ack id begins on the wire.
const TICK_PREFIX = '42["tick",';

// Socket.IO packet types (first character after the Engine.IO "4").
export const SIO_CONNECT = 0;
export const SIO_DISCONNECT = 1;
export const SIO_EVENT = 2;
export const SIO_ACK = 3;
export const SIO_CONNECT_ERROR = 4;

/** The websocket URL of the Engine.IO endpoint behind an http://host:port base URL. */
export function engineUrl(base) {
  const url = new URL(base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = "/socket.io/";
  url.search = "?EIO=4&transport=websocket";
  return url.toString();
}

/**
 * Decodes a Socket.IO packet (the text after the Engine.IO "4").
 * Returns {type, nsp, id, data}; `id` is null when absent, `data` undefined when absent.
 */
export function decodeSio(s) {
  const type = s.charCodeAt(0) - 48;
  if (type === 5 || type === 6) {
    throw new Error("binary Socket.IO packets are not used by the benchmark");
  }
  let i = 1;
  let nsp = "/";
  if (s.charCodeAt(i) === 47 /* "/" */) {
    const comma = s.indexOf(",", i);
    const end = comma === -1 ? s.length : comma;
    nsp = s.slice(i, end);
    i = comma === -1 ? s.length : comma + 1;
  }
  let j = i;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c < 48 || c > 57) break;
    j++;
  }
  const id = j > i ? Number(s.slice(i, j)) : null;
  const data = j < s.length ? JSON.parse(s.slice(j)) : undefined;
  return { type, nsp, id, data };
}

/** Encodes an EVENT packet as the full websocket frame text ("42..."). */
export function encodeEvent(nsp, id, args) {
  const prefix = nsp === "/" ? "" : `${nsp},`;
  return `42${prefix}${id === null ? "" : id}${JSON.stringify(args)}`;
}

export class RawClient {
  /**
   * @param {string} base   http://host:port
   * @param {object} hooks  onEvent(nsp, event, args, client) and onClose(client, code, why)
   */
  constructor(base, hooks = {}) {
    this.url = engineUrl(base);
    this.onEvent = hooks.onEvent ?? null;
    this.onClose = hooks.onClose ?? null;
    this.ws = null;
    this.handshake = null; // the Engine.IO open packet's JSON
    this.sids = new Map(); // nsp -> Socket.IO sid, once connected
    this.pending = new Map(); // nsp -> {resolve, reject} of a namespace connect
    this.acks = new Map(); // ack id -> {resolve, reject}
    this.nextAckId = 0;
    this.pings = 0;
    this.closed = false;
    this.closeInfo = null;
    // Free for the generator's per-client bookkeeping (counts, last seq, ...).
    this.state = null;
  }

  /** Opens the websocket and waits for the Engine.IO open packet. */
  open(timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      // perMessageDeflate off: the benchmark measures uncompressed framing, and a
      // server only compresses when the client offers the extension.
      const ws = new WebSocket(this.url, { perMessageDeflate: false, skipUTF8Validation: true });
      this.ws = ws;
      const timer = setTimeout(() => {
        reject(new Error("timeout waiting for the Engine.IO open packet"));
        ws.terminate();
      }, timeoutMs);
      ws.on("message", (data, isBinary) => {
        if (isBinary) {
          this.fail(new Error("unexpected binary frame"));
          return;
        }
        const text = data.toString();
        if (this.handshake === null) {
          if (text[0] !== EIO_OPEN) {
            clearTimeout(timer);
            reject(new Error(`expected an open packet, got ${text.slice(0, 40)}`));
            ws.terminate();
            return;
          }
          this.handshake = JSON.parse(text.slice(1));
          clearTimeout(timer);
          resolve(this.handshake);
          return;
        }
        this.receive(text);
      });
      ws.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
        this.markClosed(-1, String(err.message ?? err));
      });
      ws.on("close", (code, reason) => {
        clearTimeout(timer);
        reject(new Error(`closed before open (${code})`));
        this.markClosed(code, reason.toString());
      });
    });
  }

  markClosed(code, why) {
    if (this.closed) return;
    this.closed = true;
    this.closeInfo = { code, why };
    // Nothing waits forever on a dead connection: namespace connects and acks fail.
    for (const { reject } of this.pending.values()) reject(new Error(`closed: ${why}`));
    this.pending.clear();
    for (const { reject } of this.acks.values()) reject(new Error(`closed: ${why}`));
    this.acks.clear();
    if (this.onClose) this.onClose(this, code, why);
  }

  fail(err) {
    this.markClosed(-2, String(err.message ?? err));
    this.ws.terminate();
  }

  receive(text) {
    const kind = text[0];
    if (kind === EIO_MESSAGE) {
      if (text.startsWith(TICK_PREFIX) && this.onEvent && this.tick(text)) return;
      let packet;
      try {
        packet = decodeSio(text.slice(1));
      } catch (err) {
        this.fail(err);
        return;
      }
      this.dispatch(packet);
    } else if (kind === EIO_PING) {
      // The server's heartbeat: answer with pong (carrying the same data, if any).
      this.pings++;
      this.ws.send(`3${text.slice(1)}`);
    } else if (kind === EIO_CLOSE) {
      this.markClosed(1000, "engine.io close packet");
      this.ws.close();
    } else if (kind !== EIO_NOOP) {
      this.fail(new Error(`unexpected Engine.IO packet ${text.slice(0, 40)}`));
    }
  }

  /**
   * The fan-out hot path: `42["tick",<seq>,<t_ms>,"<payload>"]` without JSON.parse of
   * the whole array (the generator must receive far faster than the servers send).
   * Returns false, leaving the packet to the general decoder, for anything else: other
   * shapes, escapes in the payload, numbers that do not parse. `check` goes through
   * here too, so socket.io-client validates this path.
   */
  tick(text) {
    const c1 = text.indexOf(",", TICK_PREFIX.length);
    const c2 = c1 === -1 ? -1 : text.indexOf(",", c1 + 1);
    if (c1 <= TICK_PREFIX.length || c2 <= c1 + 1) return false;
    if (text.charCodeAt(c2 + 1) !== 34 /* '"' */ || !text.endsWith('"]')) return false;
    const seq = Number(text.slice(TICK_PREFIX.length, c1));
    const t = Number(text.slice(c1 + 1, c2));
    const payload = text.slice(c2 + 2, -2);
    if (!Number.isFinite(seq) || !Number.isFinite(t)) return false;
    if (payload.includes("\\") || payload.includes('"')) return false;
    this.onEvent("/", "tick", [seq, t, payload], this, null);
    return true;
  }

  dispatch(p) {
    switch (p.type) {
      case SIO_EVENT: {
        const args = p.data;
        if (this.onEvent) this.onEvent(p.nsp, args[0], args.slice(1), this, p.id);
        break;
      }
      case SIO_ACK: {
        const waiter = this.acks.get(p.id);
        if (waiter !== undefined) {
          this.acks.delete(p.id);
          waiter.resolve(p.data);
        } else {
          this.fail(new Error(`ack for unknown id ${p.id}`));
        }
        break;
      }
      case SIO_CONNECT: {
        const waiter = this.pending.get(p.nsp);
        this.pending.delete(p.nsp);
        this.sids.set(p.nsp, p.data?.sid);
        if (waiter) waiter.resolve(p.data?.sid);
        break;
      }
      case SIO_CONNECT_ERROR: {
        const waiter = this.pending.get(p.nsp);
        this.pending.delete(p.nsp);
        if (waiter) waiter.reject(new Error(`connect_error: ${JSON.stringify(p.data)}`));
        break;
      }
      case SIO_DISCONNECT:
        this.sids.delete(p.nsp);
        if (this.sids.size === 0) this.markClosed(1000, `server disconnected ${p.nsp}`);
        break;
      default:
        this.fail(new Error(`unexpected Socket.IO packet type ${p.type}`));
    }
  }

  /** Joins a namespace; resolves with the Socket.IO sid. */
  connect(nsp = "/", timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error("closed"));
        return;
      }
      const timer = setTimeout(() => {
        this.pending.delete(nsp);
        reject(new Error(`timeout connecting to namespace ${nsp}`));
      }, timeoutMs);
      this.pending.set(nsp, {
        resolve: (sid) => {
          clearTimeout(timer);
          resolve(sid);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.ws.send(nsp === "/" ? "40" : `40${nsp},`);
    });
  }

  emit(nsp, event, ...args) {
    this.ws.send(encodeEvent(nsp, null, [event, ...args]));
  }

  /** Emits with an ack id; resolves with the ack's argument array. */
  emitWithAck(nsp, event, ...args) {
    const id = this.nextAckId++;
    return new Promise((resolve, reject) => {
      if (this.closed) {
        reject(new Error("closed"));
        return;
      }
      this.acks.set(id, { resolve, reject });
      this.ws.send(encodeEvent(nsp, id, [event, ...args]));
    });
  }

  /** Closes without reporting it through onClose: the generator asked for it. */
  close() {
    if (this.ws && !this.closed) {
      this.onClose = null;
      this.markClosed(1000, "closed by the generator");
      this.ws.terminate();
    }
  }
}

/** Opens a client and connects it to `nsp`; returns the client. */
export async function connectClient(base, nsp, hooks, timeoutMs = 10000) {
  const client = new RawClient(base, hooks);
  try {
    await client.open(timeoutMs);
    await client.connect(nsp, timeoutMs);
  } catch (err) {
    client.close(); // a half-open client must not linger (nor be counted as dropped)
    throw err;
  }
  return client;
}
