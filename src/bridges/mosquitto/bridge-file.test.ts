import { describe, expect, it } from "vitest";
import { type BridgeSpec, InvalidBridgeError } from "../driver.ts";
import {
  parseBridgeFile,
  parseBrokerUrl,
  renderBridgeFile,
  renderBridgeSection,
} from "./bridge-file.ts";

const spec: BridgeSpec = {
  id: "5f0e8c1a-3b2d-4c6e-9a7f-1e2d3c4b5a69",
  direction: "in",
  remote: { url: "mqtt://Broker.A.Example", clientId: "b-bridge", username: "u", password: "p" },
  routes: [
    { topic: "a.example/9b2f6f3e-1c4d-4b7a-8e2f-6a5d4c3b2a10", qos: 1 },
    { topic: "a.example/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", qos: 0 },
  ],
};

describe("bridge include file", () => {
  it("broker URL becomes address", () => {
    expect(parseBrokerUrl("mqtt://broker.a.example")).toEqual({
      address: "broker.a.example:1883",
      tls: false,
    });
    expect(parseBrokerUrl("mqtts://broker.a.example/")).toEqual({
      address: "broker.a.example:8883",
      tls: true,
    });
    expect(parseBrokerUrl("mqtt://[::1]:1884")).toEqual({ address: "::1:1884", tls: false });
    expect(parseBrokerUrl("mqtt://192.0.2.7:2883")).toEqual({
      address: "192.0.2.7:2883",
      tls: false,
    });
  });

  it("invalid broker URLs are rejected", () => {
    for (const url of [
      "mqtt://",
      "mqtt://host:0",
      "mqtt://host:70000",
      "mqtt://host name:1883",
      "mqtt://host?x=1",
      "tcp://host:1883",
    ]) {
      expect(() => parseBrokerUrl(url), url).toThrow(InvalidBridgeError);
    }
  });

  it("section has the fixed options", () => {
    expect(renderBridgeSection(spec, {}).split("\n")).toEqual([
      "connection pepeunit-node-5f0e8c1a3b2d4c6e9a7f1e2d3c4b5a69",
      "address broker.a.example:1883",
      "remote_clientid b-bridge",
      "remote_username u",
      "remote_password p",
      "bridge_protocol_version mqttv311",
      "cleansession true",
      "try_private false",
      "notifications_local_only true",
      "restart_timeout 5 60",
      "topic a.example/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d in 0",
      "topic a.example/9b2f6f3e-1c4d-4b7a-8e2f-6a5d4c3b2a10 in 1",
    ]);
  });

  it("file parses back by bridge id", () => {
    const section = renderBridgeSection(spec, {});
    const text = renderBridgeFile(new Map([[spec.id, section]]));
    expect(parseBridgeFile(text)).toEqual(new Map([[spec.id, section]]));
  });

  it("foreign connection section is rejected", () => {
    const text = "connection operator-bridge\naddress broker.example:1883\n";
    expect(() => parseBridgeFile(text)).toThrow("did not write");
  });
});
