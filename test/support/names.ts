export { uniqueName, uniqueSuffix } from "../../src/lab/names.js";
