// Runs the launcher in a separate process so a test can kill that process and watch what survives.
// argv: <mode: owned|persistent> <dataDir> [toolsDir]
import { startInfra, writeInfraState } from "../../devtools/dist/infra/index.js";

const [mode, dataDir, toolsDir] = process.argv.slice(2);
try {
  const infra = await startInfra({
    dataDir,
    docker: "off",
    persistent: mode === "persistent",
    ...(toolsDir ? { toolsDir } : {}),
  });
  if (mode === "persistent") writeInfraState(dataDir, infra);
  process.stdout.write(
    `${JSON.stringify({ natsUrl: infra.natsUrl, mongoUri: infra.mongoUri, pids: infra.processes.map((p) => p.pid) })}\n`,
  );
  if (mode === "persistent") process.exit(0);
  setInterval(() => {}, 1_000);
} catch (err) {
  process.stdout.write(`${JSON.stringify({ error: err.message })}\n`);
  process.exit(3);
}
