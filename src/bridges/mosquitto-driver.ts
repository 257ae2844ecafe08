/**
 * {@link BrokerBridgeDriver} for Mosquitto 2.0. Mosquitto has no management API, so the driver owns
 * files that the operator's mosquitto.conf loads (see docs/bridges.md) and makes the broker load
 * them again.
 * - the bridge include file, one `connection` section per bridge, loaded only when Mosquitto
 *   starts, so a change restarts the broker;
 * - the password file and ACL file of the peer listener, one user per export grant, which
 *   Mosquitto reads again on reload (SIGHUP).
 *
 * Files are written first, then the broker restarts or reloads. The loaded-state file records the
 * SHA-256 of the file contents the broker loaded at its last successful restart or reload, so
 * after a failed restart the next apply still finds the restart owed and retries it.
 */
import path from "node:path";
import type { Logger } from "@logtape/logtape";
import { getNodeLogger } from "../logging.ts";
import {
  type ApplyReport,
  type BridgeSpec,
  type BrokerBridgeDriver,
  checkBridgeSpec,
  type DesiredBrokerState,
  type ExportGrant,
  InvalidBridgeError,
  parseBridgeTopic,
} from "./driver.ts";
import { parseBridgeFile, renderBridgeFile, renderBridgeSection } from "./mosquitto/bridge-file.ts";
import {
  type BrokerAction,
  BrokerControlError,
  type LoadedState,
  readLoadedState,
  readOptionalFile,
  runBrokerAction,
  sha256,
  writeFileAtomic,
  writeLoadedState,
} from "./mosquitto/broker-control.ts";
import {
  checkGrant,
  parseAclFile,
  parsePasswordFile,
  renderAclFile,
  renderGrantAcl,
  renderPasswordFile,
  verifyPassword,
} from "./mosquitto/peer-auth.ts";

export type { BrokerAction } from "./mosquitto/broker-control.ts";
export { BrokerControlError } from "./mosquitto/broker-control.ts";

export interface MosquittoDriverOptions {
  /** Bridge include file; its name must end in `.conf`, because include_dir loads only those. */
  bridgeFile: string;
  /** Password file of the peer listener. */
  passwordFile: string;
  /** ACL file of the peer listener. */
  aclFile: string;
  /** Loaded-state file; defaults to the bridge file's path with `.loaded.json` appended. */
  loadedStateFile?: string;
  /** Restarts Mosquitto, e.g. `{ command: "systemctl restart mosquitto" }`. */
  restart: BrokerAction;
  /** Makes Mosquitto reread its password and ACL files, e.g. `{ command: "systemctl reload mosquitto" }`. */
  reload: BrokerAction;
  /** Canonical domain of the local Pepeunit instance, the first level of its topics. */
  localDomain: string;
  /** PEM file of the CAs that sign remote broker certificates; without it `mqtts://` is rejected. */
  caFile?: string;
  /** Permission bits of the written files, which hold remote passwords; default 0o640. */
  fileMode?: number;
  logger?: Logger;
}

interface RenderedState {
  bridgeSections: Map<string, string>;
  bridgeText: string;
  aclBlocks: Map<string, string>;
  aclText: string;
  passwordText: string;
}

export class MosquittoBridgeDriver implements BrokerBridgeDriver {
  readonly kind = "mosquitto" as const;
  readonly #options: MosquittoDriverOptions;
  readonly #loadedStateFile: string;
  readonly #fileMode: number;
  readonly #logger: Logger;
  // Serializes apply calls, which read, write and compare the same files.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: MosquittoDriverOptions) {
    if (!options.bridgeFile.endsWith(".conf")) {
      throw new Error(
        `Invalid Mosquitto bridge file ${JSON.stringify(options.bridgeFile)}: include_dir loads only files whose names end in .conf; rename it`,
      );
    }
    this.#options = options;
    this.#loadedStateFile = options.loadedStateFile ?? `${options.bridgeFile}.loaded.json`;
    this.#fileMode = options.fileMode ?? 0o640;
    this.#logger = options.logger ?? getNodeLogger("bridges", "mosquitto");
  }

  apply(desired: DesiredBrokerState): Promise<ApplyReport> {
    const result = this.#queue.then(() => this.#apply(desired));
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Reads the bridge and grant ids back from the owned files. Mosquitto has no API that lists
   * bridges, so while {@link pendingAction} returns "restart" the broker still runs the bridges of
   * its last start, and these ids can differ from them.
   */
  async inspect(): Promise<{ bridges: string[]; grants: string[] }> {
    const bridgeText = (await readOptionalFile(this.#options.bridgeFile)) ?? "";
    const aclText = (await readOptionalFile(this.#options.aclFile)) ?? "";
    return {
      bridges: [...parseBridgeFile(bridgeText).keys()],
      grants: [...parseAclFile(aclText).keys()],
    };
  }

  /** Returns the restart or reload still owed after a failed one, or undefined when none is. */
  async pendingAction(): Promise<"restart" | "reload" | undefined> {
    const current = await this.#readCurrentFiles();
    const loaded = await this.#readLoadedState();
    if (sha256(current.bridgeText) !== loaded.bridges) return "restart";
    if (grantsDigest(current.passwordText, current.aclText) !== loaded.grants) return "reload";
    return undefined;
  }

  async #apply(desired: DesiredBrokerState): Promise<ApplyReport> {
    const current = await this.#readCurrentFiles();
    // Everything is checked and rendered before the first write.
    const next = this.#render(desired, current.passwordText);

    const currentBridges = parseBridgeFile(current.bridgeText);
    const currentAcl = parseAclFile(current.aclText);
    const currentPasswords = parsePasswordFile(current.passwordText);
    const report: ApplyReport = { created: [], updated: [], removed: [], restarted: false };
    compareSections(currentBridges, next.bridgeSections, report);
    compareSections(currentAcl, next.aclBlocks, report);
    for (const grant of desired.grants) {
      const hash = currentPasswords.get(grant.username);
      const passwordChanged = hash === undefined || !verifyPassword(grant.password, hash);
      if (passwordChanged && currentAcl.has(grant.id) && !report.updated.includes(grant.id)) {
        report.updated.push(grant.id);
      }
    }

    const { bridgeFile, passwordFile, aclFile } = this.#options;
    await this.#writeIfChanged(bridgeFile, current.bridgeText, next.bridgeText, current.missing);
    await this.#writeIfChanged(
      passwordFile,
      current.passwordText,
      next.passwordText,
      current.missing,
    );
    await this.#writeIfChanged(aclFile, current.aclText, next.aclText, current.missing);

    const loaded = await this.#readLoadedState();
    const nextState: LoadedState = {
      bridges: sha256(next.bridgeText),
      grants: grantsDigest(next.passwordText, next.aclText),
    };
    const changes = { created: report.created, updated: report.updated, removed: report.removed };

    if (loaded.bridges !== nextState.bridges) {
      this.#logger.info("Restarting Mosquitto to load the bridge sections of {bridgeFile}", {
        bridgeFile,
        ...changes,
      });
      await this.#run(this.#options.restart, "restart");
      await writeLoadedState(this.#loadedStateFile, nextState);
      report.restarted = true;
    } else if (loaded.grants !== nextState.grants) {
      this.#logger.info("Reloading Mosquitto to load the peer password and ACL files", changes);
      await this.#run(this.#options.reload, "reload");
      await writeLoadedState(this.#loadedStateFile, { ...loaded, grants: nextState.grants });
    }
    return report;
  }

  #render(desired: DesiredBrokerState, currentPasswordText: string): RenderedState {
    const { localDomain, caFile } = this.#options;

    const bridgeSections = new Map<string, string>();
    const clientIds = new Set<string>();
    for (const spec of desired.bridges) {
      if (bridgeSections.has(spec.id)) {
        throw new InvalidBridgeError(`Bridge ${spec.id} appears twice in the desired state`);
      }
      checkBridgeSpec(spec, localDomain, remoteDomainOf(spec, localDomain));
      if (clientIds.has(spec.remote.clientId)) {
        throw new InvalidBridgeError(
          `Bridge ${spec.id} uses remote client id ${JSON.stringify(spec.remote.clientId)} of another bridge; give each bridge its own client id, or the two connections take over each other's session`,
        );
      }
      clientIds.add(spec.remote.clientId);
      bridgeSections.set(
        spec.id,
        renderBridgeSection(spec, caFile === undefined ? {} : { caFile }),
      );
    }

    const aclBlocks = new Map<string, string>();
    const usernames = new Set<string>();
    for (const grant of desired.grants) {
      if (aclBlocks.has(grant.id)) {
        throw new InvalidBridgeError(`Grant ${grant.id} appears twice in the desired state`);
      }
      checkGrant(grant, (topic) => checkLocalTopic(grant, topic, localDomain));
      if (usernames.has(grant.username)) {
        throw new InvalidBridgeError(
          `Grant ${grant.id} uses username ${JSON.stringify(grant.username)} of another grant; give each grant its own username`,
        );
      }
      usernames.add(grant.username);
      aclBlocks.set(grant.id, renderGrantAcl(grant));
    }

    return {
      bridgeSections,
      bridgeText: renderBridgeFile(bridgeSections),
      aclBlocks,
      aclText: renderAclFile(aclBlocks),
      passwordText: renderPasswordFile(desired.grants, parsePasswordFile(currentPasswordText)),
    };
  }

  /** Reads the owned files; a missing file reads as "" and is listed in `missing`. */
  async #readCurrentFiles(): Promise<{
    bridgeText: string;
    passwordText: string;
    aclText: string;
    missing: Set<string>;
  }> {
    const { bridgeFile, passwordFile, aclFile } = this.#options;
    const missing = new Set<string>();
    const read = async (file: string) => {
      const text = await readOptionalFile(file);
      if (text === undefined) missing.add(file);
      return text ?? "";
    };
    return {
      bridgeText: await read(bridgeFile),
      passwordText: await read(passwordFile),
      aclText: await read(aclFile),
      missing,
    };
  }

  /**
   * Reads the loaded-state file. Without one, the broker is taken to run no bridges and no grants.
   * That is true on first install, because mosquitto.conf can only load the files after the node
   * has written them.
   */
  async #readLoadedState(): Promise<LoadedState> {
    const state = await readLoadedState(this.#loadedStateFile);
    if (state) return state;
    return {
      bridges: sha256(renderBridgeFile(new Map())),
      grants: grantsDigest("", renderAclFile(new Map())),
    };
  }

  /** Writes `nextText` unless the file exists with that text already. */
  async #writeIfChanged(
    file: string,
    currentText: string,
    nextText: string,
    missing: ReadonlySet<string>,
  ): Promise<void> {
    if (currentText === nextText && !missing.has(file)) return;
    await writeFileAtomic(file, nextText, this.#fileMode);
    this.#logger.debug("Wrote {file}", { file: path.resolve(file) });
  }

  async #run(action: BrokerAction, what: "restart" | "reload"): Promise<void> {
    try {
      await runBrokerAction(action, what);
    } catch (error) {
      if (!(error instanceof BrokerControlError)) throw error;
      throw new BrokerControlError(
        `${error.message}. The files are written, and the next apply retries the ${what}`,
        { cause: error.cause ?? error },
      );
    }
  }
}

/**
 * Returns the domain whose topics a bridge may carry in from the remote broker: the origin domain
 * of its first route. An `in` bridge carrying this node's own topics is rejected, because they
 * would come back to the broker that publishes them.
 */
function remoteDomainOf(spec: BridgeSpec, localDomain: string): string {
  const first = spec.routes[0];
  if (spec.direction !== "in" || first === undefined) return "";
  const { domain } = parseBridgeTopic(first.topic);
  if (domain === localDomain) {
    throw new InvalidBridgeError(
      `Bridge ${spec.id} (in) cannot carry ${first.topic}: topics of the local domain ${localDomain} are published here, so an in bridge may only carry topics of the remote domain`,
    );
  }
  return domain;
}

function checkLocalTopic(grant: ExportGrant, topic: string, localDomain: string): void {
  const { domain } = parseBridgeTopic(topic);
  if (domain !== localDomain) {
    throw new InvalidBridgeError(
      `Grant ${grant.id} cannot export ${topic}: a node exports only topics of its own domain ${localDomain}`,
    );
  }
}

function grantsDigest(passwordText: string, aclText: string): string {
  return sha256(`${passwordText}\0${aclText}`);
}

/** Adds the ids that are new, changed or gone between `current` and `next` to `report`. */
function compareSections(
  current: ReadonlyMap<string, string>,
  next: ReadonlyMap<string, string>,
  report: ApplyReport,
): void {
  const add = (list: string[], id: string) => {
    if (!list.includes(id)) list.push(id);
  };
  for (const [id, text] of next) {
    const existing = current.get(id);
    if (existing === undefined) add(report.created, id);
    else if (existing !== text) add(report.updated, id);
  }
  for (const id of current.keys()) {
    if (!next.has(id)) add(report.removed, id);
  }
}
