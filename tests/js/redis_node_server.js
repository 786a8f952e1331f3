// A Node socket.io 4.8 server with @socket.io/redis-adapter 8.3 (node-redis 4),
// or with @socket.io/redis-streams-adapter 0.3 (--adapter streams), the Node twin
// of tests/redis/cluster_server.py: same control protocol on namespace /admin
// (event "op", one object, ack {ok: result} or {error, ...}), same behaviour for
// clients of / and /chat. See that file for the ops.
//
//   node redis_node_server.js --redis redis://127.0.0.1:PORT/0 --name B [--key socket.io]
//        [--adapter pubsub|streams|sharded] [--stream-count N] [--mode static|dynamic|...]
//        [--recovery SECONDS]  (connectionStateRecovery, maxDisconnectionDuration)
// (sharded: createShardedAdapter on a Redis Cluster whose one node --redis names)
//
// Prints {"port": N} on one line once it listens on 127.0.0.1 (a free port).
"use strict";

const http = require("node:http");
const { Server, Socket } = require("socket.io");
const { createClient, createCluster } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const streams = require("@socket.io/redis-streams-adapter");

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const url = arg("redis");
const name = arg("name", "node");
const key = arg("key", "socket.io");
const requestsTimeout = Number(arg("requests-timeout", "5")) * 1000;
const adapterKind = arg("adapter", "pubsub");
const streamCount = Number(arg("stream-count", "1"));
const subscriptionMode = arg("mode", "dynamic");
const recovery = arg("recovery");

async function main() {
  const pub =
    adapterKind === "sharded" ? createCluster({ rootNodes: [{ url }] }) : createClient({ url });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on("error", (err) => console.error(`redis client error: ${err.message}`));
  }
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter:
      adapterKind === "streams"
        ? streams.createAdapter(pub, { streamName: key, channelPrefix: key, streamCount })
        : adapterKind === "sharded"
          ? createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode })
          : createAdapter(pub, sub, { key, requestsTimeout }),
    pingInterval: 5000,
    pingTimeout: 5000,
    ...(recovery
      ? { connectionStateRecovery: { maxDisconnectionDuration: Number(recovery) * 1000 } }
      : {}),
  });
  const received = [];

  for (const nspName of ["/", "/chat"]) {
    const nsp = io.of(nspName);
    nsp.on("connection", (socket) => {
      const auth = socket.handshake.auth || {};
      socket.data = { name: auth.name ?? null, test: auth.test ?? null };
      if (Array.isArray(auth.rooms) && auth.rooms.length) {
        socket.join(auth.rooms);
      }
    });
    nsp.on("sse", (...args) => {
      const cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
      received.push(["sse", args, nspName]);
      if (cb) {
        cb({ from: name, args });
      }
    });
  }

  function select(op) {
    let target = io.of(op.nsp || "/");
    if (op.rooms && op.rooms.length) {
      target = target.to(op.rooms);
    }
    if (op.except && op.except.length) {
      target = target.except(op.except);
    }
    if (op.volatile) {
      target = target.volatile;
    }
    if (op.local) {
      target = target.local;
    }
    return target;
  }

  function describe(socket) {
    return {
      id: socket.id,
      rooms: [...socket.rooms].map(String).sort(),
      data: socket.data,
      auth: socket.handshake.auth,
      remote: !(socket instanceof Socket),
    };
  }

  async function run(op) {
    const nsp = io.of(op.nsp || "/");
    const args = op.args || [];
    switch (op.op) {
      case "emit":
        select(op).emit(op.event, ...args);
        return null;
      case "emitWithAck":
        return await new Promise((resolve, reject) => {
          select(op)
            .timeout(op.timeout)
            .emit(op.event, ...args, (err, responses) => {
              if (err) {
                const e = new Error(err.message);
                e.responses = responses;
                reject(e);
              } else {
                resolve(responses);
              }
            });
        });
      case "fetchSockets":
        return (await select(op).fetchSockets()).map(describe);
      case "socketsJoin":
        select(op).socketsJoin(op.change);
        return null;
      case "socketsLeave":
        select(op).socketsLeave(op.change);
        return null;
      case "disconnectSockets":
        select(op).disconnectSockets(!!op.close);
        return null;
      case "serverSideEmit":
        nsp.serverSideEmit(op.event, ...args);
        return null;
      case "serverSideEmitWithAck":
        return await new Promise((resolve, reject) => {
          nsp.serverSideEmit(op.event, ...args, (err, responses) => {
            if (err) {
              const e = new Error(err.message);
              e.responses = responses;
              reject(e);
            } else {
              resolve(responses);
            }
          });
        });
      case "received":
        return received.filter(
          (r) => r[1].length && r[1][0] && typeof r[1][0] === "object" && r[1][0].tag === op.tag,
        );
      case "allRooms":
        // ClusterAdapter (the streams adapter) has no allRooms: its own rooms.
        return [
          ...(nsp.adapter.allRooms ? await nsp.adapter.allRooms() : nsp.adapter.rooms.keys()),
        ]
          .map(String)
          .sort();
      case "serverCount":
        return await nsp.adapter.serverCount();
      case "remote": {
        const found = (await nsp.fetchSockets()).find((s) => s.id === op.sid);
        if (!found) {
          throw new Error(`no socket ${op.sid}`);
        }
        if (op.action === "emit") {
          found.emit(op.event, ...args);
        } else if (op.action === "join") {
          await found.join(op.rooms);
        } else if (op.action === "leave") {
          for (const room of op.rooms) {
            await found.leave(room);
          }
        } else if (op.action === "disconnect") {
          found.disconnect(!!op.close);
        }
        return { remote: !(found instanceof Socket) };
      }
      default:
        throw new Error(`unknown op ${op.op}`);
    }
  }

  io.of("/admin").on("connection", (socket) => {
    socket.on("op", async (op, ack) => {
      try {
        ack({ ok: await run(op) });
      } catch (err) {
        const out = { error: `${err.name}: ${err.message}` };
        if (err.responses) {
          out.responses = err.responses;
        }
        ack(out);
      }
    });
  });

  httpServer.listen(0, "127.0.0.1", () => {
    process.stdout.write(JSON.stringify({ port: httpServer.address().port }) + "\n");
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
