import type { AgentLaunchOptions, ModelSettings } from "../port.js";
import type { SandboxFile } from "../../sandbox/port.js";

/** The provider id the fleet's model settings appear under inside OpenCode. */
export const PROVIDER_ID = "fleet";

/** OpenCode version these settings were measured against; also the plugin version pre-seeded. */
export const OPENCODE_VERSION = "1.18.33";

/** Context window assumed for fleet models (OpenCode requires one whenever a limit is given). */
const CONTEXT_TOKENS = 128_000;

/**
 * OpenCode's config for a sandbox: no network except the configured model, nothing that waits for a
 * human. OpenCode's defaults ask before some actions (doom loops, paths outside the workspace,
 * reading .env files, its `question` tool); a headless server has nobody to answer, so the session
 * would sit busy until its deadline. Every such rule is decided here instead.
 */
export function opencodeConfig(model: ModelSettings): Record<string, unknown> {
  const [primary] = model.models;
  if (!primary) throw new Error("model settings name no model");
  const models = Object.fromEntries(
    model.models.map((id) => [
      id,
      {
        name: id,
        tool_call: true,
        ...(model.maxTokens ? { limit: { context: CONTEXT_TOKENS, output: model.maxTokens } } : {}),
      },
    ]),
  );
  return {
    $schema: "https://opencode.ai/config.json",
    autoupdate: false,
    share: "disabled",
    lsp: false,
    formatter: false,
    enabled_providers: [PROVIDER_ID],
    provider: {
      [PROVIDER_ID]: {
        name: "fleet",
        npm: "@ai-sdk/openai-compatible",
        options: { baseURL: model.baseUrl, apiKey: model.apiKey },
        models,
      },
    },
    model: `${PROVIDER_ID}/${primary}`,
    // Side jobs (titles, summaries) go to the same endpoint, never to a provider that is not there.
    small_model: `${PROVIDER_ID}/${primary}`,
    permission: {
      edit: "allow",
      bash: "allow",
      webfetch: "deny",
      doom_loop: "deny",
      external_directory: "deny",
      question: "deny",
      read: { "*": "allow", "*.env": "deny", "*.env.*": "deny", "*.env.example": "allow" },
    },
  };
}

const DISABLED_FEATURES = [
  "OPENCODE_DISABLE_AUTOUPDATE",
  "OPENCODE_DISABLE_MODELS_FETCH",
  "OPENCODE_DISABLE_LSP_DOWNLOAD",
  "OPENCODE_DISABLE_DEFAULT_PLUGINS",
  "OPENCODE_DISABLE_SHARE",
  "OPENCODE_DISABLE_CLAUDE_CODE",
  "OPENCODE_DISABLE_EXTERNAL_SKILLS",
] as const;

/**
 * The server's environment. XDG_* are set to empty strings: OpenCode (xdg-basedir) and git treat an
 * empty value as unset and fall back to $HOME/.config, $HOME/.local/share, $HOME/.cache and
 * $HOME/.local/state, so everything lands under the sandbox's own HOME (set by the provider) even when
 * the host's environment has XDG_* of its own. `opencodeHomeFiles()` paths rely on this layout.
 */
export function opencodeEnv(options: AgentLaunchOptions): Record<string, string> {
  return {
    OPENCODE_SERVER_PASSWORD: options.password,
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfig(options.model)),
    ...Object.fromEntries(DISABLED_FEATURES.map((name) => [name, "1"])),
    XDG_CONFIG_HOME: "",
    XDG_DATA_HOME: "",
    XDG_CACHE_HOME: "",
    XDG_STATE_HOME: "",
  };
}

/**
 * Files to write under the sandbox home before the server starts. On first use OpenCode installs
 * `@opencode-ai/plugin` into its config folder with npm; offline that only costs time and log noise.
 * A package.json and lockfile naming the plugin, with a node_modules folder, make it skip that.
 */
export function opencodeHomeFiles(): SandboxFile[] {
  const dir = ".config/opencode";
  const packageJson = { dependencies: { "@opencode-ai/plugin": OPENCODE_VERSION } };
  const lock = {
    name: "opencode",
    lockfileVersion: 3,
    requires: true,
    packages: {
      "": { dependencies: { "@opencode-ai/plugin": OPENCODE_VERSION } },
      "node_modules/@opencode-ai/plugin": { version: OPENCODE_VERSION },
    },
  };
  return [
    { path: `${dir}/package.json`, content: `${JSON.stringify(packageJson, null, 2)}\n` },
    { path: `${dir}/package-lock.json`, content: `${JSON.stringify(lock, null, 2)}\n` },
    // A sandbox file API writes files, not folders: this marker makes node_modules exist.
    { path: `${dir}/node_modules/.fleet-seeded`, content: "" },
  ];
}
