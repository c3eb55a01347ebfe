import { randomBytes } from "node:crypto";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

let lastMs = 0;
let counter = 0;

/**
 * A message id in OpenCode's own format: `msg_`, 12 hex digits of (milliseconds * 4096 + counter)
 * cut to its low 48 bits as OpenCode cuts it, 14 random base-62 characters. OpenCode orders a session's messages by id, so an id made here must
 * sort after everything already in the session: `nowMs` should be the server's clock (the client
 * corrects for skew), and the counter keeps ids made within one millisecond ascending.
 */
export function messageId(nowMs: number = Date.now()): string {
  const ms = Math.max(Math.floor(nowMs), lastMs);
  if (ms !== lastMs) {
    lastMs = ms;
    counter = 0;
  }
  counter++;
  const value = BigInt(ms) * 4096n + BigInt(counter);
  const hex = value.toString(16).padStart(12, "0").slice(-12);
  const bytes = randomBytes(14);
  let tail = "";
  for (const b of bytes) tail += BASE62[b % 62];
  return `msg_${hex}${tail}`;
}
