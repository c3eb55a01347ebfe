import { createServer } from "node:net";
import { FleetError } from "../../errors/index.js";

/** True when nothing listens on 127.0.0.1:port right now (the only way to know is to try). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * A port in [lo, hi] that is free now and not promised to another sandbox. The scan starts at a
 * random offset so concurrent creators (other fleet processes) rarely probe the same port first.
 */
export async function pickPort(
  range: readonly [number, number],
  taken: ReadonlySet<number>,
  random = Math.random,
): Promise<number> {
  const [lo, hi] = range;
  const size = hi - lo + 1;
  const start = Math.floor(random() * size);
  for (let i = 0; i < size; i++) {
    const port = lo + ((start + i) % size);
    if (taken.has(port)) continue;
    if (await portFree(port)) return port;
  }
  throw new FleetError("sandbox", `no free agent port in ${lo}-${hi}`, { retryable: true });
}
