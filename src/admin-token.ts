import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { getNodeLogger } from "./logging.ts";

const logger = getNodeLogger("server");

/**
 * Returns the configured admin token, or the one kept in `<dataDir>/admin-token`, creating it
 * (mode 0600) on first start. The token itself is never logged.
 */
export async function resolveAdminToken(
  configured: string | undefined,
  dataDir: string,
): Promise<string> {
  if (configured) return configured;
  const file = path.join(dataDir, "admin-token");
  try {
    const stored = (await readFile(file, "utf8")).trim();
    if (stored.length >= 32) return stored;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const token = randomBytes(32).toString("hex");
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  logger.warning("Generated an admin token in {file}; set PU_NODE_ADMIN_TOKEN to choose your own", {
    file,
  });
  return token;
}
