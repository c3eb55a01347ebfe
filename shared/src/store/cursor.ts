import { z } from "zod";
import { FleetError } from "../errors/index.js";

const CursorTuple = z.tuple([z.number().int().nonnegative(), z.string().min(1).max(128)]);

/** A page boundary is the (createdAt, id) of the last item: unique, so no item is skipped or repeated. */
export function encodeCursor(createdAt: number, id: string): string {
  return Buffer.from(JSON.stringify([createdAt, id])).toString("base64url");
}

export function decodeCursor(cursor: string): { createdAt: number; id: string } {
  try {
    const [createdAt, id] = CursorTuple.parse(JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")));
    return { createdAt, id };
  } catch (err) {
    throw new FleetError("bad_input", "invalid cursor", { cause: err });
  }
}
