import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FleetError } from "@fleet/shared/errors";

/**
 * The changes the fleet's FerretDB build makes to FerretDB v1.24.2, applied to a copy of the module
 * source before `go build`. Each edit names text that must occur exactly `count` times, so a
 * source that moved on fails the build loudly instead of building something unpatched.
 * MongoDB itself needs none of this: it gives these guarantees natively.
 */
interface Edit {
  file: string;
  from: string;
  to: string;
  count: number;
}

/** Takes the collection's lock before a read-modify-write command and holds it until the command returns. */
function lockBefore(call: string, names: string): string {
  return [
    `\t// fleet: one read-modify-write command at a time per collection (see fleet_collection_lock.go).`,
    `\tunlock, err := lockCollection(connCtx, ${names})`,
    `\tif err != nil {`,
    `\t\treturn nil, lazyerrors.Error(err)`,
    `\t}`,
    `\tdefer unlock()`,
    ``,
    call,
  ].join("\n");
}

const sqlite = join("internal", "backends", "sqlite");
const handler = join("internal", "handler");

export const FERRETDB_EDITS: readonly Edit[] = [
  {
    // SQLite indexes _id as `_ferretdb_sjson->"_id"` but upstream looked documents up by
    // `->'$._id'`: the same JSON path to SQLite, yet only the indexed expression uses the index, so
    // every lookup and update by _id scanned the table (78% of the store's CPU in json_extract).
    file: join(sqlite, "metadata", "metadata.go"),
    from: `IDColumn = DefaultColumn + "->'$._id'"`,
    to: `IDColumn = DefaultColumn + "->'_id'"`,
    count: 1,
  },
  {
    // Upstream narrows a query to the _id index only when the filter is exactly {_id}; a
    // conditional update such as {_id, status} scanned the table. The handler applies the whole
    // filter to what the backend returns, so narrowing by the _id equality alone is safe.
    // Twice: in Query and in Explain, so explain reports what Query does.
    file: join(sqlite, "collection.go"),
    from: `\tif params.Filter.Len() == 1 {\n`,
    to: `\tif fleetIDPushdown(params.Filter) { // fleet: any filter with an _id equality, not only {_id}\n`,
    count: 2,
  },
  {
    // findAndModify, update and delete read, then write by _id in a separate statement: two
    // commands on one document interleave (both conditional updates win, increments are lost).
    file: join(handler, "msg_findandmodify.go"),
    from: `\tres, err := h.findAndModifyDocument(connCtx, params)\n`,
    to: lockBefore(`\tres, err := h.findAndModifyDocument(connCtx, params)\n`, "params.DB, params.Collection"),
    count: 1,
  },
  {
    file: join(handler, "msg_update.go"),
    from: `\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n`,
    to: lockBefore(
      `\tmatched, modified, upserted, err := h.updateDocument(connCtx, params)\n`,
      "params.DB, params.Collection",
    ),
    count: 1,
  },
  {
    file: join(handler, "msg_delete.go"),
    from: `\tvar deleted int32\n`,
    to: lockBefore(`\tvar deleted int32\n`, "params.DB, params.Collection"),
    count: 1,
  },
];

const HEADER = `// Added by the fleet's FerretDB build (devtools/src/infra/ferretdb-patch.ts in the fleet's repository).\n\n`;

/** Whole files the build adds beside upstream's. */
export const FERRETDB_FILES: Readonly<Record<string, string>> = {
  [join(handler, "fleet_collection_lock.go")]: `${HEADER}package handler

import (
	"context"
	"sync"
)

// collectionLocks holds one lock per "database\\x00collection": a channel with room for one token,
// so that a waiter whose client went away can give up (a sync.Mutex cannot be abandoned).
//
// FerretDB 1.24 runs findAndModify, update and delete as a read, then a separate write by _id.
// Running those commands one at a time per collection gives MongoDB's single-document atomicity
// (a conditional update wins once, no increment or field is lost) as long as this one process
// owns the data. Inserts need no lock: the unique _id index already decides between them.
var collectionLocks sync.Map

// lockCollection waits for the collection's turn and returns its release, or the context's error.
func lockCollection(ctx context.Context, db, collection string) (func(), error) {
	key := db + "\\x00" + collection
	v, ok := collectionLocks.Load(key)
	if !ok {
		v, _ = collectionLocks.LoadOrStore(key, make(chan struct{}, 1))
	}
	token := v.(chan struct{})

	select {
	case token <- struct{}{}:
		return func() { <-token }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
`,
  [join(sqlite, "fleet_id_pushdown.go")]: `${HEADER}package sqlite

import "github.com/FerretDB/FerretDB/internal/types"

// fleetIDPushdown reports whether the filter names _id exactly once at its top level, so the
// query may be narrowed to the _id index; the handler still applies the whole filter. (Upstream
// required the filter to be exactly {_id}. A repeated key is left alone: Document.Get panics on it.)
func fleetIDPushdown(filter *types.Document) bool {
	n := 0
	for _, k := range filter.Keys() {
		if k == "_id" {
			n++
		}
	}

	return n == 1
}
`,
};

/** Applies the fleet's changes to a writable copy of the FerretDB module source; throws if one no longer fits. */
export function applyFerretDbPatch(src: string, version: string): void {
  for (const edit of FERRETDB_EDITS) {
    const path = join(src, edit.file);
    const code = readFileSync(path, "utf8");
    const found = code.split(edit.from).length - 1;
    if (found !== edit.count) {
      throw new FleetError(
        "infra",
        `FerretDB ${version}: ${edit.file} has ${found} of the ${edit.count} place(s) the fleet's build changes (${JSON.stringify(edit.from.trim())}); the patch needs updating`,
      );
    }
    writeFileSync(path, code.split(edit.from).join(edit.to));
  }
  for (const [file, text] of Object.entries(FERRETDB_FILES)) writeFileSync(join(src, file), text);
}
