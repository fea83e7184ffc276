/**
 * XML-RPC encoding of one value, as XAPI writes it into `task.result` even over JSON-RPC
 * (a reference is `<value>OpaqueRef:…</value>`, a set an `<array>`, a map a `<struct>`).
 */
export function xmlRpcValue(value: unknown): string {
  if (typeof value === "string") return `<value>${escapeXml(value)}</value>`;
  if (typeof value === "boolean") return `<value><boolean>${value ? 1 : 0}</boolean></value>`;
  if (typeof value === "number") {
    // XAPI ints travel as strings of decimal digits; floats as <double>.
    return Number.isInteger(value) ? `<value>${value}</value>` : `<value><double>${value}</double></value>`;
  }
  if (Array.isArray(value)) return `<value><array><data>${value.map(xmlRpcValue).join("")}</data></array></value>`;
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value as Record<string, unknown>)
      .map(([name, member]) => `<member><name>${escapeXml(name)}</name>${xmlRpcValue(member)}</member>`)
      .join("");
    return `<value><struct>${members}</struct></value>`;
  }
  return "<value></value>";
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}
