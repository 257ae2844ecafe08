import { describe, expect, it } from "vitest";
import { classifyTopic, type TopicClassification, topicDomain } from "./topics.ts";

const LOCAL = "unit.example.com";
const NODE = "7279a1f2-4c1e-4b8a-9f3d-0c2b6a5e8d11";
const UNIT = "9d0c3b2a-1e4f-4a6b-8c7d-5e6f7a8b9c0d";

const cases: Array<[string, string, TopicClassification]> = [
  [
    "plain UnitNode topic",
    `${LOCAL}/${NODE}`,
    { kind: "unit-node", domain: LOCAL, domainKind: "local", unitNodeId: NODE },
  ],
  [
    "backend UnitNode topic",
    `${LOCAL}/${NODE}/pepeunit`,
    { kind: "unit-node-backend", domain: LOCAL, domainKind: "local", unitNodeId: NODE },
  ],
  [
    "output base topic",
    `${LOCAL}/output_base_topic/${UNIT}/state/pepeunit`,
    {
      kind: "base",
      domain: LOCAL,
      domainKind: "local",
      unitId: UNIT,
      destination: "output_base_topic",
      purpose: "state",
    },
  ],
  [
    "input base topic",
    `${LOCAL}/input_base_topic/${UNIT}/update/pepeunit`,
    {
      kind: "base",
      domain: LOCAL,
      domainKind: "local",
      unitId: UNIT,
      destination: "input_base_topic",
      purpose: "update",
    },
  ],
  [
    "foreign UnitNode topic",
    `other.example.org/${NODE}/pepeunit`,
    {
      kind: "unit-node-backend",
      domain: "other.example.org",
      domainKind: "foreign",
      unitNodeId: NODE,
    },
  ],
  [
    "domain with port",
    `localhost:8080/${NODE}`,
    { kind: "unit-node", domain: "localhost:8080", domainKind: "foreign", unitNodeId: NODE },
  ],
  ["$SYS topic", "$SYS/broker/uptime", { kind: "broker", domain: "", domainKind: "foreign" }],
  ["$share-like topic", "$anything", { kind: "broker", domain: "", domainKind: "foreign" }],
  [
    "empty middle level",
    `${LOCAL}//pepeunit`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "empty-level" },
  ],
  [
    "leading slash",
    `/${LOCAL}/${NODE}`,
    { kind: "other", domain: "", domainKind: "foreign", problem: "empty-level" },
  ],
  [
    "trailing slash",
    `${LOCAL}/${NODE}/`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "empty-level" },
  ],
  ["empty topic", "", { kind: "other", domain: "", domainKind: "foreign", problem: "empty-level" }],
  [
    "six levels",
    `${LOCAL}/output_base_topic/${UNIT}/state/pepeunit/extra`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "too-deep" },
  ],
  [
    "upper-case domain",
    `Unit.Example.com/${NODE}`,
    { kind: "other", domain: "", domainKind: "foreign", problem: "invalid-domain" },
  ],
  [
    "underscore in domain",
    `not_a_domain/${NODE}`,
    { kind: "other", domain: "", domainKind: "foreign", problem: "invalid-domain" },
  ],
  [
    "non-UUID node id",
    `${LOCAL}/current_temp`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "invalid-id" },
  ],
  [
    "non-UUID node id with suffix",
    `${LOCAL}/1234/pepeunit`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "invalid-id" },
  ],
  [
    "non-UUID unit id",
    `${LOCAL}/output_base_topic/unit-1/state/pepeunit`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "invalid-id" },
  ],
  [
    "upper-case node id",
    `${LOCAL}/${NODE.toUpperCase()}`,
    {
      kind: "unit-node",
      domain: LOCAL,
      domainKind: "local",
      unitNodeId: NODE,
      problem: "non-canonical-id",
    },
  ],
  [
    "upper-case unit id",
    `${LOCAL}/output_base_topic/${UNIT.toUpperCase()}/log/pepeunit`,
    {
      kind: "base",
      domain: LOCAL,
      domainKind: "local",
      unitId: UNIT,
      destination: "output_base_topic",
      purpose: "log",
      problem: "non-canonical-id",
    },
  ],
  [
    "replacement character from invalid UTF-8",
    `${LOCAL}/\uFFFD\uFFFD`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "invalid-utf8" },
  ],
  [
    "replacement character in the domain",
    `unit\uFFFD.example.com/${NODE}`,
    { kind: "other", domain: "", domainKind: "foreign", problem: "invalid-utf8" },
  ],
  [
    "three levels without suffix",
    `${LOCAL}/${NODE}/state`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "unknown-form" },
  ],
  [
    "four levels",
    `${LOCAL}/output_base_topic/${UNIT}/pepeunit`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "unknown-form" },
  ],
  [
    "five levels with unknown destination",
    `${LOCAL}/output_topic/${UNIT}/state/pepeunit`,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "unknown-form" },
  ],
  [
    "domain only",
    LOCAL,
    { kind: "other", domain: LOCAL, domainKind: "local", problem: "unknown-form" },
  ],
];

describe("classifyTopic", () => {
  it.each(cases)("classifies %s", (_name, topic, expected) => {
    expect(classifyTopic(topic, LOCAL)).toEqual(expected);
  });

  it("treats the local domain as foreign elsewhere", () => {
    expect(classifyTopic(`${LOCAL}/${NODE}`, "other.example.org").domainKind).toBe("foreign");
  });
});

describe("topicDomain", () => {
  it.each([
    [`${LOCAL}/${NODE}`, LOCAL],
    [LOCAL, LOCAL],
    [`/${LOCAL}`, ""],
    [`Bad_Domain/${NODE}`, ""],
  ])("returns the domain of %s", (topic, expected) => {
    expect(topicDomain(topic)).toBe(expected);
  });
});
