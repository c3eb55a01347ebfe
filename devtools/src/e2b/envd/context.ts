import { isAbsolute, posix } from "node:path";

/** What envd knows of its sandbox: the user's home, the sandbox's own variables, its id. */
export interface EnvdOptions {
  sandboxId: string;
  home: string;
  user: string;
  /** Names of the variables (in envd's own environment) the sandbox was created with. */
  sandboxEnvNames: readonly string[];
  /** Kept in every process: the local provider finds a sandbox's processes by it. */
  markerVar: string;
}

export class EnvdContext {
  readonly home: string;
  constructor(readonly options: EnvdOptions) {
    this.home = options.home;
  }

  /** envd resolves relative paths against the user's home. */
  resolve(path: string): string {
    return posix.normalize(isAbsolute(path) ? path : posix.join(this.home, path));
  }

  /** A process's environment, as envd builds it: the user's defaults, the sandbox's variables, the request's. */
  processEnv(envs: Record<string, string>, cwd: string): Record<string, string> {
    const own = process.env;
    const sandbox: Record<string, string> = {};
    for (const name of this.options.sandboxEnvNames) {
      const v = own[name];
      if (v !== undefined) sandbox[name] = v;
    }
    const marker = own[this.options.markerVar];
    return {
      PATH: own.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOME: this.home,
      USER: this.options.user,
      LOGNAME: this.options.user,
      LANG: own.LANG ?? "C.UTF-8",
      E2B_SANDBOX: "true",
      E2B_SANDBOX_ID: this.options.sandboxId,
      ...sandbox,
      ...envs,
      PWD: cwd,
      ...(marker ? { [this.options.markerVar]: marker } : {}),
    };
  }
}
