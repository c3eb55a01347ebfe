import { startProcess, type ManagedProcess } from "../../devtools/src/infra/index.js";
import { eventually } from "./fixtures.js";

/** A server of one test file's own, stopped and started again on the same port and data. */
export class Restartable {
  private proc: ManagedProcess | undefined;
  constructor(
    private readonly name: string,
    private readonly command: string,
    private readonly args: string[],
    private readonly logFile: string,
    private readonly ready: () => Promise<void>,
  ) {}
  async start(): Promise<void> {
    this.proc = startProcess({ name: this.name, command: this.command, args: this.args, logFile: this.logFile });
    await eventually(async () => await this.ready().then(() => true), 20_000, 100);
  }
  async stop(): Promise<void> {
    await this.proc?.stop();
  }
}
