// A wall clock in milliseconds with sub-millisecond precision, shared by the Node
// benchmark server and the load generator.
//
// Latency is "receive time in the generator minus send time stamped by the server",
// and the Python servers stamp with time.time() (CLOCK_REALTIME, ns precision). Node's
// Date.now() reads the same clock but only in whole milliseconds, so we align the
// monotonic performance.now() to it once: spin until Date.now() ticks over, at which
// instant the wall clock is exactly that integer (to within a few microseconds).
import { performance } from "node:perf_hooks";

function calibrate() {
  const first = Date.now();
  let wall = first;
  let mono = 0;
  while (wall === first) {
    mono = performance.now();
    wall = Date.now();
  }
  return wall - mono;
}

const offset = calibrate();

/** Milliseconds since the epoch (CLOCK_REALTIME), as a float with µs resolution. */
export function nowMs() {
  return offset + performance.now();
}
