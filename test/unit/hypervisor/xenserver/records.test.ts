import { describe, expect, it } from "vitest";
import { FIELDS_USED, MESSAGES_USED } from "../../../../src/hypervisor/xenserver/index.js";
import { IMPLICIT_MESSAGES_USED } from "../../../../src/hypervisor/xenserver/records.js";
import { classSpec } from "../../../../src/lab/xapi-sim/datamodel.js";

describe("the XenServer wrapper's types against the XAPI data model", () => {
  it("reads and writes only fields the data model has", () => {
    for (const [cls, fields] of Object.entries(FIELDS_USED)) {
      const known = classSpec(cls).fields.map((field) => field.name);
      for (const field of fields) expect(known, `${cls}.${field}`).toContain(field);
    }
  });

  it("calls only messages the data model has (or XAPI's implicit constructors and accessors of real fields)", () => {
    for (const [cls, messages] of Object.entries(MESSAGES_USED)) {
      const known = classSpec(cls).messages.map((message) => message.name);
      for (const message of messages) expect(known, `${cls}.${message}`).toContain(message);
    }
    for (const method of IMPLICIT_MESSAGES_USED) {
      const [cls, message] = method.split(".") as [string, string];
      const field = /^(?:add_to|remove_from)_(.+)$/.exec(message)?.[1];
      if (field !== undefined) expect(classSpec(cls).fields.find((candidate) => candidate.name === field)?.qualifier).toBe("RW");
      else expect(["create", "destroy"]).toContain(message);
    }
  });
});
