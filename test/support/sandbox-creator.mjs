// Creates a local sandbox and starts a long process in it, reports, then idles until killed, so a
// test can SIGKILL this "fleet process" and check that nothing about the sandbox is lost.
// argv: <rootDir> <isolation> <metadata JSON>
import { createLogger } from "../../shared/dist/log/index.js";
import { LocalSandboxProvider } from "../../shared/dist/sandbox/index.js";

const [rootDir, isolation, metadataJson] = process.argv.slice(2);
try {
  const provider = new LocalSandboxProvider(
    { rootDir, isolation },
    createLogger({ name: "sandbox-creator", level: "silent" }),
  );
  const sandbox = await provider.create({ metadata: JSON.parse(metadataJson), envs: {}, timeoutMs: 60_000 });
  const { pid } = await sandbox.startBackground({ command: "sleep", args: ["60"] });
  process.stdout.write(`${JSON.stringify({ sandboxId: sandbox.id, pid })}\n`);
  setInterval(() => {}, 1_000);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
  process.exit(3);
}
