import { expand } from "../validate.js";

/**
 * Classic BPF programs for ip6tables' `bpf` match (xt_bpf), written out as the `--bytecode`
 * text it takes and ip6tables-save prints (`N,code jt jf k,...`): the one xtables match that can
 * walk an option list whose lengths vary. A program sees the packet from its IPv6 header and
 * has at most 64 instructions (XT_BPF_MAX_NUM_INSTR), with forward jumps only, so a walk is
 * unrolled and split over several rules.
 *
 * A load past the end of the packet ends the program with 0, "no match". Each program here
 * answers "bad" with 1, so a truncated packet reads as "not bad": sound, because every
 * truncation the walk can meet (an option longer than what is left, a zero length, a PIO cut
 * short) makes the receiver discard the whole RA (RFC 4861 §6.1.2, Linux ndisc_parse_options).
 */

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const LDX_IMM = 0x01; // ldx #k
const LD_B_ABS = 0x30; // ldb [k]
const LD_H_IND = 0x48; // ldh [x + k]
const ALU_ADD_K = 0x04;
const TXA = 0x87;
const JA = 0x05;
const LD_LEN = 0x80; // ld #len
const LD_W_IND = 0x40; // ld [x + k]
const LD_B_IND = 0x50; // ldb [x + k]
const ALU_AND_K = 0x54;
const ALU_LSH_K = 0x64;
const ALU_ADD_X = 0x0c;
const TAX = 0x07;
const JEQ_K = 0x15;
const JEQ_X = 0x1d;
const RET_K = 0x06;

/** Most options an RA from a guarded uplink may carry on the xtables backend. */
export const RA_MAX_OPTIONS = 13;
/** IPv6 offset of an RA's first option (no extension header: checked before). */
const RA_OPTIONS = 40 + 16;
const MAX_INSNS = 64;

/** The instructions that move X from one option to the next (by its length, in 8-byte units). */
function skip(): Insn[] {
  return [
    { code: LD_B_IND, jt: 0, jf: 0, k: 1 },
    { code: ALU_LSH_K, jt: 0, jf: 0, k: 3 },
    { code: ALU_ADD_X, jt: 0, jf: 0, k: 0 },
    { code: TAX, jt: 0, jf: 0, k: 0 },
  ];
}

/**
 * The programs that together check every prefix information option among the first
 * RA_MAX_OPTIONS options of an RA: each returns 1 when one of the options it checks is a PIO
 * that is not exactly `prefix`/64 (32 bytes long), else 0. The last returns 1 when the RA has
 * more options than that (its walk does not end at the packet's end).
 */
export function raPrefixPrograms(prefix: string): string[] {
  const groups = expand(prefix.split("/")[0] as string);
  const high = Number.parseInt(groups.slice(0, 2).join(""), 16);
  const low = Number.parseInt(groups.slice(2, 4).join(""), 16);
  const programs: Insn[][] = [];
  let position = 0;
  while (position < RA_MAX_OPTIONS) {
    const program: Insn[] = [{ code: LDX_IMM, jt: 0, jf: 0, k: RA_OPTIONS }];
    for (let i = 0; i < position; i++) program.push(...skip());
    // Check as many options as fit, leaving room for the two returns.
    while (position < RA_MAX_OPTIONS && program.length + 13 + 2 <= MAX_INSNS) {
      // From each block, "bad" jumps to the `ret #1` at the very end; the distance is patched below.
      program.push(
        { code: LD_B_IND, jt: 0, jf: 0, k: 0 }, // type
        { code: JEQ_K, jt: 0, jf: 7, k: 3 }, // a PIO? else go on to the skip
        { code: LD_W_IND, jt: 0, jf: 0, k: 0 }, // type, length, prefix length, flags
        { code: ALU_AND_K, jt: 0, jf: 0, k: 0xffffff00 },
        { code: JEQ_K, jt: 0, jf: -1, k: 0x03044000 }, // 3, 4 (32 bytes), /64
        { code: LD_W_IND, jt: 0, jf: 0, k: 16 }, // prefix, first half
        { code: JEQ_K, jt: 0, jf: -1, k: high },
        { code: LD_W_IND, jt: 0, jf: 0, k: 20 }, // prefix, second half
        { code: JEQ_K, jt: 0, jf: -1, k: low },
        ...skip(),
      );
      position++;
    }
    program.push({ code: RET_K, jt: 0, jf: 0, k: 0 }, { code: RET_K, jt: 0, jf: 0, k: 1 });
    programs.push(patch(program));
  }
  // More options than the walk covers: the walk must end exactly at the end of the packet.
  const bound: Insn[] = [{ code: LDX_IMM, jt: 0, jf: 0, k: RA_OPTIONS }];
  for (let i = 0; i < RA_MAX_OPTIONS; i++) bound.push(...skip());
  bound.push(
    { code: LD_LEN, jt: 0, jf: 0, k: 0 },
    { code: JEQ_X, jt: 0, jf: 1, k: 0 },
    { code: RET_K, jt: 0, jf: 0, k: 0 },
    { code: RET_K, jt: 0, jf: 0, k: 1 },
  );
  programs.push(bound);
  return programs.map(bytecode);
}

/** An instruction whose jumps name labels; `assemble` turns them into forward offsets. */
interface Step {
  code: number;
  k?: number;
  jt?: string;
  jf?: string;
  /** For `ja`: the label to jump to (its offset goes in k). */
  to?: string;
  label?: string;
}

function assemble(steps: Step[]): Insn[] {
  const at = new Map<string, number>();
  steps.forEach((step, i) => {
    if (step.label !== undefined) at.set(step.label, i);
  });
  const offset = (from: number, label: string | undefined) => {
    if (label === undefined) return 0;
    const target = at.get(label);
    if (target === undefined || target <= from) throw new Error(`bpf: jump to ${label} is not forward`);
    return target - from - 1;
  };
  return steps.map((step, i) => ({
    code: step.code,
    jt: offset(i, step.jt),
    jf: offset(i, step.jf),
    k: step.to === undefined ? (step.k ?? 0) : offset(i, step.to),
  }));
}

/** ND options checked on xtables, each 8 bytes, at most this many (as nft/skeleton.ts checks them). */
export const ND_MAX_OPTIONS = 3;

/**
 * One port's ND link-layer check: 1 for an RS, NS or NA (without extension headers; those are
 * dropped by other rules) whose options are not all 8 bytes long, number more than
 * ND_MAX_OPTIONS, or carry a source or target link-layer address other than `mac`; else 0.
 */
export function ndOptionProgram(mac: string): string {
  const digits = mac.replaceAll(":", "");
  const high = Number.parseInt(digits.slice(0, 8), 16);
  const low = Number.parseInt(digits.slice(8), 16);
  const steps: Step[] = [
    { code: LD_B_ABS, k: 6 }, // next header
    { code: JEQ_K, k: 58, jf: "good" },
    { code: LD_B_ABS, k: 40 }, // ICMPv6 type
    { code: JEQ_K, k: 133, jt: "rs" },
    { code: JEQ_K, k: 135, jt: "nsna" },
    { code: JEQ_K, k: 136, jt: "nsna", jf: "good" },
    { code: LDX_IMM, k: 48, label: "rs" }, // RS options after 4 reserved bytes
    { code: JA, to: "option0" },
    { code: LDX_IMM, k: 64, label: "nsna" }, // NS/NA options after the 16-byte target
  ];
  for (let i = 0; i < ND_MAX_OPTIONS; i++) {
    steps.push(
      { code: LD_LEN, label: `option${i}` },
      { code: JEQ_X, jt: "good" }, // the options end here
      { code: LD_B_IND, k: 1 },
      { code: JEQ_K, k: 1, jf: "bad" }, // 8 bytes, or the rules cannot place the next one
      { code: LD_B_IND, k: 0 },
      { code: JEQ_K, k: 1, jt: `lla${i}` },
      { code: JEQ_K, k: 2, jf: `next${i}` },
      { code: LD_W_IND, k: 2, label: `lla${i}` },
      { code: JEQ_K, k: high, jf: "bad" },
      { code: LD_H_IND, k: 6 },
      { code: JEQ_K, k: low, jf: "bad" },
      { code: TXA, label: `next${i}` },
      { code: ALU_ADD_K, k: 8 },
      { code: TAX },
    );
  }
  steps.push(
    { code: LD_LEN },
    { code: JEQ_X, jt: "good", jf: "bad" }, // more options than the rules bound
    { code: RET_K, k: 0, label: "good" },
    { code: RET_K, k: 1, label: "bad" },
  );
  return bytecode(assemble(steps));
}

/** Replaces every jump offset of -1 with the distance to the program's last instruction (`ret #1`). */
function patch(program: Insn[]): Insn[] {
  const last = program.length - 1;
  return program.map((insn, i) => ({
    ...insn,
    jt: insn.jt === -1 ? last - i - 1 : insn.jt,
    jf: insn.jf === -1 ? last - i - 1 : insn.jf,
  }));
}

function bytecode(program: Insn[]): string {
  if (program.length > MAX_INSNS) throw new Error(`a bpf program of ${program.length} instructions (xt_bpf takes ${MAX_INSNS})`);
  return `${program.length},${program.map((i) => `${i.code} ${i.jt} ${i.jf} ${i.k >>> 0}`).join(",")}`;
}
