// Creates a sandbox and starts a long process in it, reports, then idles until killed, so a test
// can SIGKILL this "fleet process" and check that nothing about the sandbox is lost.
// argv: local <rootDir> <isolation> <metadata JSON>, or e2b <metadata JSON> with the e2b provider's
// config (JSON) in SANDBOX_CREATOR_E2B.
import { createLogger } from "../../shared/dist/log/index.js";
import { E2BSandboxProvider, LocalSandboxProvider } from "../../shared/dist/sandbox/index.js";

const logger = createLogger({ name: "sandbox-creator", level: "silent" });
const [kind, ...rest] = process.argv.slice(2);
try {
  const provider =
    kind === "e2b"
      ? new E2BSandboxProvider(JSON.parse(process.env.SANDBOX_CREATOR_E2B ?? "{}"), logger)
      : new LocalSandboxProvider({ rootDir: rest[0], isolation: rest[1] }, logger);
  const metadataJson = kind === "e2b" ? rest[0] : rest[2];
  const sandbox = await provider.create({ metadata: JSON.parse(metadataJson), envs: {}, timeoutMs: 60_000 });
  const { pid } = await sandbox.startBackground({ command: "sleep", args: ["60"] });
  process.stdout.write(`${JSON.stringify({ sandboxId: sandbox.id, pid })}\n`);
  setInterval(() => {}, 1_000);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: String(err?.message ?? err) })}\n`);
  process.exit(3);
}
