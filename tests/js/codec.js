// The npm parsers as a line-oriented peer for triosio's codec interop tests.
//
// Reads one JSON request per line on stdin, writes one JSON response per line on
// stdout. Binary values travel as {"$bytes": "<base64>"} and Dates as
// {"$date": <epoch ms>}, in both directions; towards node, {"$arraybuffer": "<base64>"}
// is an ArrayBuffer (what a browser sends) and {"$undefined": 1} is undefined.
// Requests:
//
//   {"op": "sio_encode", "packet": P}            -> {"parts": [...]}
//   {"op": "sio_decode", "parts": [...]}         -> {"packets": [...], "pending": bool}
//   {"op": "msgpack_encode", "packet": P}        -> {"data": {"$bytes": ...}}
//   {"op": "msgpack_decode", "data": B}          -> {"packets": [...]}
//   {"op": "eio_encode_packet", "packet": E, "supportsBinary": bool} -> {"encoded": ...}
//   {"op": "eio_decode_packet", "data": S|B}     -> {"packet": E}
//   {"op": "eio_encode_payload", "packets": [E]} -> {"body": "..."}
//   {"op": "eio_decode_payload", "body": "..."}  -> {"packets": [E]}
//   {"op": "stringify", "json": ["...", ...]}    -> {"out": [JSON.stringify(JSON.parse(x))]}
//   {"op": "backoff", "min", "max", "jitter", "draws": [...], "count"} -> {"delays": [...]}
//
// Any exception becomes {"error": "<message>"}.
"use strict";

const path = require("node:path");
const readline = require("node:readline");
const sioParser = require("socket.io-parser");
const eioParser = require("engine.io-parser");
const msgpackParser = require("socket.io-msgpack-parser");
// Not in the package's "exports": load it by path, next to the CommonJS entry.
const { Backoff } = require(
  path.join(path.dirname(require.resolve("socket.io-client")), "contrib", "backo2.js"),
);

function toWire(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (value instanceof ArrayBuffer) {
    return { $bytes: Buffer.from(value).toString("base64") };
  }
  if (value instanceof Date) {
    return { $date: value.getTime() };
  }
  if (Array.isArray(value)) {
    return value.map(toWire);
  }
  if (value !== null && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined) {
        out[key] = toWire(value[key]);
      }
    }
    return out;
  }
  return value;
}

function fromWire(value) {
  if (Array.isArray(value)) {
    return value.map(fromWire);
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === "$bytes") {
      return Buffer.from(value.$bytes, "base64");
    }
    if (keys.length === 1 && keys[0] === "$date") {
      return new Date(value.$date);
    }
    if (keys.length === 1 && keys[0] === "$arraybuffer") {
      const buf = Buffer.from(value.$arraybuffer, "base64");
      return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
    }
    if (keys.length === 1 && keys[0] === "$undefined") {
      return undefined;
    }
    const out = {};
    for (const key of keys) {
      out[key] = fromWire(value[key]);
    }
    return out;
  }
  return value;
}

function collect(decoder, parts) {
  const packets = [];
  decoder.on("decoded", (packet) => packets.push(packet));
  for (const part of parts) {
    decoder.add(part);
  }
  return packets;
}

const handlers = {
  sio_encode(req) {
    return { parts: toWire(new sioParser.Encoder().encode(fromWire(req.packet))) };
  },
  sio_decode(req) {
    const decoder = new sioParser.Decoder();
    const packets = collect(decoder, fromWire(req.parts));
    return { packets: toWire(packets), pending: Boolean(decoder.reconstructor) };
  },
  msgpack_encode(req) {
    const [data] = new msgpackParser.Encoder().encode(fromWire(req.packet));
    return { data: toWire(data) };
  },
  msgpack_decode(req) {
    return { packets: toWire(collect(new msgpackParser.Decoder(), [fromWire(req.data)])) };
  },
  eio_encode_packet(req) {
    let encoded;
    eioParser.encodePacket(fromWire(req.packet), req.supportsBinary, (out) => {
      encoded = out;
    });
    return { encoded: toWire(encoded) };
  },
  eio_decode_packet(req) {
    return { packet: toWire(eioParser.decodePacket(fromWire(req.data), "nodebuffer")) };
  },
  eio_encode_payload(req) {
    let body;
    eioParser.encodePayload(fromWire(req.packets), (out) => {
      body = out;
    });
    return { body };
  },
  eio_decode_payload(req) {
    return { packets: toWire(eioParser.decodePayload(req.body, "nodebuffer")) };
  },
  stringify(req) {
    return { out: req.json.map((text) => JSON.stringify(JSON.parse(text))) };
  },
  backoff(req) {
    // Backoff draws from Math.random: replay the given draws, in a cycle.
    const original = Math.random;
    let i = 0;
    Math.random = () => req.draws[i++ % req.draws.length];
    try {
      const backoff = new Backoff({ min: req.min, max: req.max, jitter: req.jitter });
      const delays = [];
      for (let n = 0; n < req.count; n++) {
        delays.push(backoff.duration());
      }
      return { delays };
    } finally {
      Math.random = original;
    }
  },
};

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on("line", (line) => {
  let response;
  try {
    const request = JSON.parse(line);
    const handler = handlers[request.op];
    if (!handler) {
      throw new Error(`unknown op ${request.op}`);
    }
    response = handler(request);
  } catch (err) {
    response = { error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(response) + "\n");
});
