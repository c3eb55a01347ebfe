import { accessSync, constants } from "node:fs";
import { describe, expect, it } from "vitest";
import { FleetError } from "../../errors/index.js";
import { createLogger } from "../../log/index.js";
import { resolveOpencodeBinary } from "./binary.js";
import { opencodeConfig, opencodeHomeFiles } from "./config.js";
import { opencodeRuntime } from "./runtime.js";

const model = {
  baseUrl: "http://127.0.0.1:9999/v1",
  apiKey: "sk-test",
  models: ["primary", "fallback"],
  maxTokens: 2048,
};

describe("OpenCode launch settings", () => {
  it("configures one offline provider with every model and no rule that waits for a human", () => {
    const config = opencodeConfig(model);
    expect(config).toMatchObject({
      autoupdate: false,
      share: "disabled",
      lsp: false,
      formatter: false,
      enabled_providers: ["fleet"],
      model: "fleet/primary",
      small_model: "fleet/primary",
      provider: {
        fleet: {
          npm: "@ai-sdk/openai-compatible",
          options: { baseURL: model.baseUrl, apiKey: "sk-test" },
          models: {
            primary: { tool_call: true, limit: { context: expect.any(Number), output: 2048 } },
            fallback: { tool_call: true, limit: { output: 2048 } },
          },
        },
      },
      permission: { edit: "allow", bash: "allow", webfetch: "deny" },
    });
    expect(JSON.stringify(config.permission)).not.toContain('"ask"');
    const noLimit = opencodeConfig({ ...model, maxTokens: undefined }) as {
      provider: { fleet: { models: Record<string, object> } };
    };
    expect(noLimit.provider.fleet.models.primary).not.toHaveProperty("limit");
    expect(() => opencodeConfig({ ...model, models: [] })).toThrow();
  });

  it("builds the serve command with password, config and the disabling variables", () => {
    const runtime = opencodeRuntime({ binary: "/opt/opencode", logger: createLogger({ name: "t", level: "silent" }) });
    const spec = runtime.launchCommand({ port: 24001, password: "s3cret", workspace: "/w", model });
    expect(spec.command).toBe("/opt/opencode");
    expect(spec.args).toEqual(["serve", "--port", "24001", "--hostname", "127.0.0.1"]);
    expect(spec.envs).toMatchObject({
      OPENCODE_SERVER_PASSWORD: "s3cret",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_DISABLE_CLAUDE_CODE: "1",
      OPENCODE_DISABLE_EXTERNAL_SKILLS: "1",
      // Empty: OpenCode falls back to the folders under the sandbox's HOME.
      XDG_CONFIG_HOME: "",
      XDG_DATA_HOME: "",
      XDG_CACHE_HOME: "",
      XDG_STATE_HOME: "",
    });
    expect(JSON.parse(spec.envs?.OPENCODE_CONFIG_CONTENT ?? "")).toEqual(opencodeConfig(model));
    expect(runtime.homeFiles()).toEqual(opencodeHomeFiles());
    expect(
      opencodeRuntime({
        binary: "/x",
        hostname: "0.0.0.0",
        logger: createLogger({ name: "t", level: "silent" }),
      }).launchCommand({ port: 1, password: "p", workspace: "/w", model }).args,
    ).toContain("0.0.0.0");
  });

  it("pre-seeds OpenCode's config folder so it does not install its plugin package", () => {
    const files = opencodeHomeFiles();
    expect(files.map((f) => f.path)).toEqual([
      ".config/opencode/package.json",
      ".config/opencode/package-lock.json",
      ".config/opencode/node_modules/.fleet-seeded",
    ]);
    for (const f of files.slice(0, 2)) expect(String(f.content)).toContain("@opencode-ai/plugin");
  });

  it("finds the platform binary installed with opencode-ai", () => {
    const binary = resolveOpencodeBinary();
    expect(binary).toMatch(/opencode-(linux|darwin)-(x64|arm64)(-baseline)?\/bin\/opencode$/);
    expect(() => accessSync(binary, constants.X_OK)).not.toThrow();
    expect(() => resolveOpencodeBinary("win32", "x64")).toThrow(FleetError);
  });
});
