/**
 * The text sent to the agent: the user's prompt, then (when the session limits its tools) a section
 * naming the tools it may use, as the original module shaped it.
 */
export function buildPromptText(prompt: string, tools: readonly string[]): string {
  if (tools.length === 0) return prompt;
  return `${prompt}\n\n## Allowed tools\nUse only these tools: ${tools.join(", ")}`;
}
