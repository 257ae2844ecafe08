/**
 * Contract tests of the EMQX bridge driver against the fake EMQX 5.8 API in
 * `test/fakes/emqx-bridges.ts`. EMQX does not run on the development machines, so these tests
 * never reach a live EMQX.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  AUTHZ_SOURCE_TYPE,
  type FakeEmqxBridges,
  startFakeEmqxBridges,
} from "../../test/fakes/emqx-bridges.ts";
import { EmqxApiError } from "../metering/emqx/errors.ts";
import {
  type BridgeSpec,
  bridgeResourceName,
  type DesiredBrokerState,
  type ExportGrant,
  InvalidBridgeError,
} from "./driver.ts";
import { LANDING_RULE_ID } from "./emqx/resources.ts";
import { EmqxBridgeDriver, EmqxSetupError } from "./emqx-driver.ts";

const LOCAL = "b.example";
const REMOTE = "a.example";
const IN_ID = "11111111-1111-4111-8111-111111111111";
const IN_ID_2 = "33333333-3333-4333-8333-333333333333";
const OUT_ID = "22222222-2222-4222-8222-222222222222";
const NODE_1 = "9d0c6a52-5b0e-4d8e-8a53-4f2e1c7b9a10";
const NODE_2 = "0f4e2a7c-1b3d-4c5e-9f60-718293a4b5c6";
const NODE_3 = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";

let fake: FakeEmqxBridges;
let driver: EmqxBridgeDriver;

beforeAll(async () => {
  fake = await startFakeEmqxBridges();
});

afterAll(async () => {
  await fake.stop();
});

beforeEach(() => {
  fake.connectors.clear();
  fake.sources.clear();
  fake.actions.clear();
  fake.rules.clear();
  fake.users.clear();
  fake.userRules.clear();
  fake.requests.length = 0;
  fake.scriptedResponses.length = 0;
  fake.authenticator = { enable: true };
  fake.authzSources = [
    { type: AUTHZ_SOURCE_TYPE, enable: true, max_rules: 100 },
    { type: "file", enable: true },
  ];
  driver = newDriver();
});

const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

function newDriver(): EmqxBridgeDriver {
  return new EmqxBridgeDriver({
    url: fake.url,
    apiKey: fake.apiKey,
    apiSecret: fake.apiSecret,
    localDomain: LOCAL,
    timeoutMs: 5_000,
    tlsCaCertificates: CA_PEM,
  });
}

function inBridge(id = IN_ID, routes = [NODE_1, NODE_2]): BridgeSpec {
  return {
    id,
    direction: "in",
    remote: {
      url: "mqtt://broker.a.example:1883",
      username: "pepeunit-node-bridge-import",
      password: "remote-password-1",
      clientId: "b-example-import",
    },
    routes: routes.map((node) => ({ topic: `${REMOTE}/${node}`, qos: 1 })),
  };
}

function outBridge(): BridgeSpec {
  return {
    id: OUT_ID,
    direction: "out",
    remote: { url: "mqtts://broker.c.example", clientId: "b-example-export" },
    routes: [
      { topic: `${LOCAL}/${NODE_1}`, qos: 0 },
      { topic: `${LOCAL}/${NODE_2}`, qos: 1 },
      { topic: `${LOCAL}/${NODE_3}`, qos: 1 },
    ],
  };
}

function grant(topics = [NODE_1], password = "grant-password-1"): ExportGrant {
  return {
    id: OUT_ID,
    username: `pepeunit-node-bridge-${OUT_ID}`,
    password,
    topics: topics.map((node) => `${LOCAL}/${node}`),
  };
}

function state(bridges: BridgeSpec[], grants: ExportGrant[] = []): DesiredBrokerState {
  return { bridges, grants };
}

function writeLog(): string[] {
  return fake.writes.map((request) => `${request.method} ${request.path}`);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail");
}

const inBase = bridgeResourceName(IN_ID);
const outBase = bridgeResourceName(OUT_ID);
const source1 = `${inBase}-${NODE_1.replaceAll("-", "")}`;
const source2 = `${inBase}-${NODE_2.replaceAll("-", "")}`;

describe("EmqxBridgeDriver apply", () => {
  it("creates connectors, sources, actions and rules", async () => {
    const report = await driver.apply(state([inBridge(), outBridge()]));

    expect(report.created.sort()).toEqual([IN_ID, OUT_ID].sort());
    expect(report.updated).toEqual([]);
    expect(report.removed).toEqual([]);
    expect(report.restarted).toBe(false);

    const connector = fake.connectors.get(`mqtt:${inBase}`);
    expect(connector?.config.server).toBe("broker.a.example:1883");
    expect(connector?.config.username).toBe("pepeunit-node-bridge-import");
    expect(connector?.config.password).toBe("remote-password-1");
    expect(connector?.config.clientid_prefix).toBe("b-example-import");
    expect(connector?.config.pool_size).toBe(1);
    const tlsConnector = fake.connectors.get(`mqtt:${outBase}`);
    expect(tlsConnector?.config.server).toBe("broker.c.example:8883");
    expect(tlsConnector?.config.ssl).toMatchObject({
      enable: true,
      verify: "verify_peer",
      server_name_indication: "broker.c.example",
    });

    expect([...fake.sources.keys()].sort()).toEqual([`mqtt:${source1}`, `mqtt:${source2}`].sort());
    expect(fake.sources.get(`mqtt:${source1}`)?.config).toMatchObject({
      connector: inBase,
      parameters: { topic: `${REMOTE}/${NODE_1}`, qos: 1 },
    });

    const landing = fake.rules.get(LANDING_RULE_ID);
    expect(landing?.from.sort()).toEqual(
      [`$bridges/mqtt:${source1}`, `$bridges/mqtt:${source2}`].sort(),
    );
    expect(landing?.config.actions).toMatchObject([
      {
        function: "republish",
        args: { topic: `\${topic}`, qos: `\${qos}`, retain: `\${retain}`, payload: `\${payload}` },
      },
    ]);

    expect([...fake.actions.keys()].sort()).toEqual([
      `mqtt:${outBase}-qos0`,
      `mqtt:${outBase}-qos1`,
    ]);
    expect(fake.actions.get(`mqtt:${outBase}-qos1`)?.config.parameters).toMatchObject({
      topic: `\${topic}`,
      qos: 1,
      retain: `\${flags.retain}`,
    });
    expect(fake.rules.get(`${outBase}-qos1`)?.from).toEqual([
      `${LOCAL}/${NODE_2}`,
      `${LOCAL}/${NODE_3}`,
    ]);
    expect(fake.rules.get(`${outBase}-qos1`)?.config.actions).toEqual([`mqtt:${outBase}-qos1`]);
    expect(fake.rules.get(`${outBase}-qos0`)?.from).toEqual([`${LOCAL}/${NODE_1}`]);
    expect(fake.requests.some((request) => request.path.startsWith("/api/v5/bridges"))).toBe(false);
  });

  it("makes no writes on a second apply", async () => {
    await driver.apply(state([inBridge(), outBridge()], [grant()]));
    fake.requests.length = 0;

    const report = await driver.apply(state([inBridge(), outBridge()], [grant()]));

    expect(writeLog()).toEqual([]);
    expect(report).toEqual({ created: [], updated: [], removed: [], restarted: false });
  });

  it("makes no writes when a new driver applies the same bridges", async () => {
    await driver.apply(state([inBridge(), outBridge()]));
    fake.requests.length = 0;

    await newDriver().apply(state([inBridge(), outBridge()]));

    expect(writeLog()).toEqual([]);
  });

  it("updates a source when a route's QoS changes", async () => {
    await driver.apply(state([inBridge()]));
    fake.requests.length = 0;
    const changed = inBridge();
    const firstRoute = changed.routes[0];
    if (firstRoute !== undefined) firstRoute.qos = 0;

    const report = await driver.apply(state([changed]));

    expect(writeLog()).toEqual([`PUT /api/v5/sources/mqtt:${source1}`]);
    expect(fake.sources.get(`mqtt:${source1}`)?.config.parameters).toMatchObject({ qos: 0 });
    expect(report.updated).toEqual([IN_ID]);
  });

  it("adds a source and the landing rule picks it up", async () => {
    await driver.apply(state([inBridge(IN_ID, [NODE_1])]));
    fake.requests.length = 0;

    await driver.apply(state([inBridge(IN_ID, [NODE_1, NODE_2])]));

    expect(writeLog()).toEqual(["POST /api/v5/sources", `PUT /api/v5/rules/${LANDING_RULE_ID}`]);
    expect(fake.rules.get(LANDING_RULE_ID)?.from).toContain(`$bridges/mqtt:${source2}`);
  });

  it("updates the connector when only the password changes", async () => {
    await driver.apply(state([inBridge()]));
    fake.requests.length = 0;
    const changed = inBridge();
    changed.remote.password = "remote-password-2";

    const report = await driver.apply(state([changed]));

    expect(writeLog()).toEqual([`PUT /api/v5/connectors/mqtt:${inBase}`]);
    expect(fake.connectors.get(`mqtt:${inBase}`)?.config.password).toBe("remote-password-2");
    expect(report.updated).toEqual([IN_ID]);
  });

  it("updates the connector when the remote URL changes", async () => {
    await driver.apply(state([inBridge()]));
    fake.requests.length = 0;
    const changed = inBridge();
    changed.remote.url = "mqtt://broker2.a.example:1884";

    await driver.apply(state([changed]));

    expect(writeLog()).toEqual([`PUT /api/v5/connectors/mqtt:${inBase}`]);
    expect(fake.connectors.get(`mqtt:${inBase}`)?.config.server).toBe("broker2.a.example:1884");
  });

  it("updates the connector when the CA certificates change", async () => {
    await driver.apply(state([outBridge()]));
    fake.requests.length = 0;
    const otherCa = new EmqxBridgeDriver({
      url: fake.url,
      apiKey: fake.apiKey,
      apiSecret: fake.apiSecret,
      localDomain: LOCAL,
      tlsCaCertificates: CA_PEM.replace("MIIBfake", "MIIBother"),
    });

    await otherCa.apply(state([outBridge()]));

    expect(writeLog()).toEqual([`PUT /api/v5/connectors/mqtt:${outBase}`]);
  });

  it("removes a route's source after the landing rule drops it", async () => {
    await driver.apply(state([inBridge()]));
    fake.requests.length = 0;

    await driver.apply(state([inBridge(IN_ID, [NODE_1])]));

    expect(writeLog()).toEqual([
      `PUT /api/v5/rules/${LANDING_RULE_ID}`,
      `DELETE /api/v5/sources/mqtt:${source2}`,
    ]);
  });

  it("removes an in bridge in dependency order with the landing rule", async () => {
    await driver.apply(state([inBridge(), outBridge()]));
    fake.requests.length = 0;

    const report = await driver.apply(state([outBridge()]));

    const log = writeLog();
    expect(log[0]).toBe(`DELETE /api/v5/rules/${LANDING_RULE_ID}`);
    expect(log.slice(1, 3).sort()).toEqual(
      [`DELETE /api/v5/sources/mqtt:${source1}`, `DELETE /api/v5/sources/mqtt:${source2}`].sort(),
    );
    expect(log[3]).toBe(`DELETE /api/v5/connectors/mqtt:${inBase}`);
    expect(log).toHaveLength(4);
    expect(fake.rules.has(LANDING_RULE_ID)).toBe(false);
    expect(report.removed).toEqual([IN_ID]);
    expect(report.updated).toEqual([]);
  });

  it("keeps the landing rule while another in bridge remains", async () => {
    await driver.apply(state([inBridge(), inBridge(IN_ID_2, [NODE_3])]));
    fake.requests.length = 0;

    await driver.apply(state([inBridge(IN_ID_2, [NODE_3])]));

    expect(fake.rules.get(LANDING_RULE_ID)?.from).toEqual([
      `$bridges/mqtt:${bridgeResourceName(IN_ID_2)}-${NODE_3.replaceAll("-", "")}`,
    ]);
    expect(writeLog()[0]).toBe(`PUT /api/v5/rules/${LANDING_RULE_ID}`);
  });

  it("removes an out bridge's rules before its actions", async () => {
    await driver.apply(state([outBridge()]));
    fake.requests.length = 0;

    await driver.apply(state([]));

    const log = writeLog();
    expect(log.slice(0, 2).every((entry) => entry.startsWith("DELETE /api/v5/rules/"))).toBe(true);
    expect(log.slice(2, 4).every((entry) => entry.startsWith("DELETE /api/v5/actions/"))).toBe(
      true,
    );
    expect(log[4]).toBe(`DELETE /api/v5/connectors/mqtt:${outBase}`);
    expect(fake.connectors.size).toBe(0);
    expect(fake.actions.size).toBe(0);
    expect(fake.rules.size).toBe(0);
  });
});

describe("EmqxBridgeDriver foreign resources", () => {
  beforeEach(async () => {
    const post = async (path: string, body: unknown) => {
      const response = await fetch(new URL(`/api/v5/${path}`, fake.url), {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${fake.apiKey}:${fake.apiSecret}`).toString("base64")}`,
          "content-type": "application/json",
        },
        body: JSON.stringify(body),
      });
      expect(response.status).toBeLessThan(300);
    };
    await post("connectors", { type: "mqtt", name: "operator-uplink", server: "10.0.0.1:1883" });
    await post("sources", {
      type: "mqtt",
      name: "operator-source",
      connector: "operator-uplink",
      parameters: { topic: "x/#" },
    });
    await post("rules", {
      id: "operator-rule",
      sql: 'SELECT * FROM "$bridges/mqtt:operator-source"',
    });
    await post(`authentication/password_based:built_in_database/users`, {
      user_id: "alice",
      password: "alice-password",
    });
    await post(`authorization/sources/built_in_database/rules/users`, [
      { username: "alice", rules: [{ topic: "#", permission: "allow", action: "all" }] },
    ]);
    fake.requests.length = 0;
  });

  it("leaves resources without the prefix alone", async () => {
    await driver.apply(state([inBridge(), outBridge()], [grant()]));
    await driver.apply(state([]));

    expect(fake.writes.some((request) => request.path.includes("operator-"))).toBe(false);
    expect(fake.writes.some((request) => request.path.includes("alice"))).toBe(false);
    expect(fake.connectors.has("mqtt:operator-uplink")).toBe(true);
    expect(fake.sources.has("mqtt:operator-source")).toBe(true);
    expect(fake.rules.has("operator-rule")).toBe(true);
    expect(fake.users.has("alice")).toBe(true);
    expect(fake.userRules.has("alice")).toBe(true);
  });

  it("inspect lists only owned bridges and grants", async () => {
    await driver.apply(state([inBridge(), outBridge()], [grant()]));

    expect(await driver.inspect()).toEqual({ bridges: [IN_ID, OUT_ID].sort(), grants: [OUT_ID] });
  });
});

describe("EmqxBridgeDriver export grants", () => {
  it("creates a user with subscribe-only rules", async () => {
    const report = await driver.apply(state([], [grant([NODE_1, NODE_2])]));

    const username = grant().username;
    expect(fake.users.get(username)).toEqual({ password: "grant-password-1", isSuperuser: false });
    // Allow rules in topic order (NODE_2 sorts before NODE_1), then the closing deny rules.
    expect(fake.userRules.get(username)).toEqual([
      { topic: `${LOCAL}/${NODE_2}`, permission: "allow", action: "subscribe" },
      { topic: `${LOCAL}/${NODE_1}`, permission: "allow", action: "subscribe" },
      { topic: "#", permission: "deny", action: "all" },
      { topic: "$SYS/#", permission: "deny", action: "all" },
    ]);
    expect(report.created).toEqual([OUT_ID]);
    const ruleWrite = writeLog().findIndex((entry) => entry.includes("authorization"));
    const userWrite = writeLog().findIndex((entry) => entry.includes("authentication"));
    expect(ruleWrite).toBeLessThan(userWrite);
  });

  it("updates the password and the topics", async () => {
    await driver.apply(state([], [grant([NODE_1])]));
    fake.requests.length = 0;

    const report = await driver.apply(state([], [grant([NODE_1, NODE_3], "grant-password-2")]));

    const username = grant().username;
    expect(writeLog().sort()).toEqual([
      `PUT /api/v5/authentication/password_based:built_in_database/users/${username}`,
      `PUT /api/v5/authorization/sources/built_in_database/rules/users/${username}`,
    ]);
    expect(fake.users.get(username)?.password).toBe("grant-password-2");
    expect(fake.userRules.get(username)?.map((rule) => rule.topic)).toContain(`${LOCAL}/${NODE_3}`);
    expect(report.updated).toEqual([OUT_ID]);
  });

  it("removes the user before its rules", async () => {
    await driver.apply(state([], [grant()]));
    fake.requests.length = 0;

    const report = await driver.apply(state([]));

    const username = grant().username;
    expect(writeLog()).toEqual([
      `DELETE /api/v5/authentication/password_based:built_in_database/users/${username}`,
      `DELETE /api/v5/authorization/sources/built_in_database/rules/users/${username}`,
    ]);
    expect(fake.users.size).toBe(0);
    expect(fake.userRules.size).toBe(0);
    expect(report.removed).toEqual([OUT_ID]);
  });

  it("sets the password again after a restart", async () => {
    await driver.apply(state([], [grant()]));
    fake.requests.length = 0;

    await newDriver().apply(state([], [grant()]));

    expect(writeLog()).toEqual([
      `PUT /api/v5/authentication/password_based:built_in_database/users/${grant().username}`,
    ]);
  });

  it("names the missing authenticator", async () => {
    fake.authenticator = undefined;

    const error = await rejection(driver.apply(state([], [grant()])));

    expect(error).toBeInstanceOf(EmqxSetupError);
    expect((error as Error).message).toContain("password_based:built_in_database");
    expect((error as Error).message).toContain("Built-in Database");
    expect(fake.writes).toEqual([]);
  });

  it("names the missing authorization source", async () => {
    fake.authzSources = [{ type: "file", enable: true }];

    const error = await rejection(driver.apply(state([], [grant()])));

    expect(error).toBeInstanceOf(EmqxSetupError);
    expect((error as Error).message).toContain("authorization source built_in_database");
    expect(fake.writes).toEqual([]);
  });

  it("rejects a disabled authenticator", async () => {
    fake.authenticator = { enable: false };

    const error = await rejection(driver.apply(state([], [grant()])));

    expect(error).toBeInstanceOf(EmqxSetupError);
    expect((error as Error).message).toContain("disabled");
  });

  it("needs no authenticator without grants", async () => {
    fake.authenticator = undefined;
    fake.authzSources = [];

    const report = await driver.apply(state([inBridge()]));

    expect(report.created).toEqual([IN_ID]);
  });

  it("rejects a grant of foreign topics", async () => {
    const foreign = { ...grant(), topics: [`${REMOTE}/${NODE_1}`] };

    const error = await rejection(driver.apply(state([], [foreign])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect(fake.requests).toEqual([]);
  });

  it("rejects a username without the prefix", async () => {
    const unowned = { ...grant(), username: `bridge-${OUT_ID}` };

    const error = await rejection(driver.apply(state([], [unowned])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect((error as Error).message).toContain("pepeunit-node-");
    expect(fake.requests).toEqual([]);
  });
});

describe("EmqxBridgeDriver checks", () => {
  it("rejects a re-export before any request", async () => {
    const reexport = outBridge();
    reexport.routes = [{ topic: `${REMOTE}/${NODE_1}`, qos: 1 }];

    const error = await rejection(driver.apply(state([inBridge(), reexport])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect((error as Error).message).toContain(`${REMOTE}/${NODE_1}`);
    expect(fake.requests).toEqual([]);
  });

  it("rejects an in bridge of local topics", async () => {
    const loop = inBridge();
    loop.routes = [{ topic: `${LOCAL}/${NODE_1}`, qos: 1 }];

    const error = await rejection(driver.apply(state([loop])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect(fake.requests).toEqual([]);
  });

  it("rejects an in bridge that mixes domains", async () => {
    const mixed = inBridge();
    mixed.routes.push({ topic: `c.example/${NODE_3}`, qos: 1 });

    const error = await rejection(driver.apply(state([mixed])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect(fake.requests).toEqual([]);
  });

  it("rejects mqtts without CA certificates", async () => {
    const withoutCa = new EmqxBridgeDriver({
      url: fake.url,
      apiKey: fake.apiKey,
      apiSecret: fake.apiSecret,
      localDomain: LOCAL,
    });

    const error = await rejection(withoutCa.apply(state([outBridge()])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect((error as Error).message).toContain("tlsCaCertificates");
    expect(fake.requests).toEqual([]);
  });

  it("rejects a remote URL that is not MQTT", async () => {
    const http = inBridge();
    http.remote.url = "http://broker.a.example";

    const error = await rejection(driver.apply(state([http])));

    expect(error).toBeInstanceOf(InvalidBridgeError);
    expect((error as Error).message).toContain("mqtt://host:port");
  });
});

describe("EmqxBridgeDriver errors", () => {
  it("reports status, code and message", async () => {
    fake.scriptedResponses.push({
      status: 503,
      body: JSON.stringify({ code: "SERVICE_UNAVAILABLE", message: "request timeout" }),
    });

    const error = await rejection(driver.apply(state([inBridge()])));

    expect(error).toBeInstanceOf(EmqxApiError);
    const apiError = error as EmqxApiError;
    expect(apiError.status).toBe(503);
    expect(apiError.code).toBe("SERVICE_UNAVAILABLE");
    expect(apiError.endpoint).toBe("GET /api/v5/connectors");
    expect(apiError.message).toContain("request timeout");
  });

  it("reports a source that a foreign rule still uses", async () => {
    await driver.apply(state([inBridge()]));
    const response = await fetch(new URL("/api/v5/rules", fake.url), {
      method: "POST",
      headers: {
        authorization: `Basic ${Buffer.from(`${fake.apiKey}:${fake.apiSecret}`).toString("base64")}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ id: "operator-tap", sql: `SELECT * FROM "$bridges/mqtt:${source1}"` }),
    });
    expect(response.status).toBe(201);

    const error = await rejection(driver.apply(state([])));

    expect(error).toBeInstanceOf(EmqxApiError);
    const apiError = error as EmqxApiError;
    expect(apiError.status).toBe(400);
    expect(apiError.endpoint).toBe(`DELETE /api/v5/sources/mqtt:${source1}`);
    expect(apiError.message).toContain("active rules");
    expect(fake.connectors.has(`mqtt:${inBase}`)).toBe(true);
  });

  it("reports a wrong API secret", async () => {
    const wrong = new EmqxBridgeDriver({
      url: fake.url,
      apiKey: fake.apiKey,
      apiSecret: "wrong-secret-value",
      localDomain: LOCAL,
      tlsCaCertificates: CA_PEM,
    });

    const error = await rejection(wrong.apply(state([inBridge()])));

    expect(error).toBeInstanceOf(EmqxApiError);
    expect((error as EmqxApiError).status).toBe(401);
    expect((error as Error).message).not.toContain("wrong-secret-value");
  });
});

describe("fake EMQX bridges API", () => {
  const headers = () => ({
    authorization: `Basic ${Buffer.from(`${fake.apiKey}:${fake.apiSecret}`).toString("base64")}`,
    accept: "application/json",
    "content-type": "application/json",
  });

  it("returns 404 on the removed bridges API", async () => {
    const response = await fetch(new URL("/api/v5/bridges", fake.url), { headers: headers() });

    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ code: "NOT_FOUND", message: "Request Path Not Found" });
  });

  it("rejects a source of an unknown connector", async () => {
    const response = await fetch(new URL("/api/v5/sources", fake.url), {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({
        type: "mqtt",
        name: "s1",
        connector: "missing",
        parameters: { topic: "t/1" },
      }),
    });

    expect(response.status).toBe(400);
    expect(await response.text()).toContain("connector_not_found_or_wrong_type");
  });

  it("rejects deleting a connector in use", async () => {
    await driver.apply(state([inBridge()]));

    const response = await fetch(new URL(`/api/v5/connectors/mqtt:${inBase}`, fake.url), {
      method: "DELETE",
      headers: headers(),
    });

    expect(response.status).toBe(400);
    expect(((await response.json()) as { message: string }).message).toContain("active channels");
  });

  it("rejects a connector without a server", async () => {
    const response = await fetch(new URL("/api/v5/connectors", fake.url), {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ type: "mqtt", name: "c1" }),
    });

    expect(response.status).toBe(400);
  });

  it("rejects an invalid resource name", async () => {
    const response = await fetch(new URL("/api/v5/connectors", fake.url), {
      method: "POST",
      headers: headers(),
      body: JSON.stringify({ type: "mqtt", name: "-bad.name", server: "h:1883" }),
    });

    expect(response.status).toBe(400);
    expect(await response.text()).toContain("Invalid name format");
  });
});
