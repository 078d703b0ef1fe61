import { describe, expect, test } from "vitest";
import { callgrindWrapper, instructionShares, totalOf } from "../bench/src/callgrind.js";
import { underWrapper } from "../pkg/testkit/src/services.js";

// A callgrind output file as valgrind 3.19 writes it (names compressed to ids after their first use; a call's
// inclusive cost on the line after `calls=`).
const PROFILE = `# callgrind format
version: 1
creator: callgrind-3.19.0
positions: line
events: Ir
summary: 1111

ob=(1) ???
fl=(1) ???
fn=(1) 0x000000000d195714
0 100
cob=(2) /usr/bin/node
cfi=(1)
cfn=(2) Builtins_LoadIC
calls=3 0
0 999999
+2 20
ob=(2)
fn=(2)
0 300
fn=(3) v8::internal::Scavenger::ScavengeObject<v8::internal::FullHeapObjectSlot>(v8::internal::FullHeapObjectSlot)
0 400
fn=(4) v8::internal::compiler::GraphReducer::ReduceTop()
0 50
* 40
fn=(5) v8::internal::JsonStringifier::SerializeString(v8::internal::Handle<v8::internal::String>)
0 200
fn=(1)
-2 1
`;

describe("instructionShares", () => {
  test("sums each function's own cost by kind, leaving out the inclusive cost of its calls", () => {
    expect(instructionShares(PROFILE)).toEqual({
      total: 1111,
      javascript: 100 + 20 + 300 + 1, // JIT code (0x…) and builtins, the JIT function's cost resumed after a call
      gc: 400,
      compiling: 90,
      other: 200,
    });
  });

  test("its total is the one the file states", () => {
    expect(totalOf(PROFILE)).toBe(instructionShares(PROFILE).total);
    expect(totalOf("events: Ir\ntotals: 42\n")).toBe(42);
    // valgrind 3.19's header summary underflows in every dump after the first: the totals line wins.
    expect(totalOf("events: Ir\nsummary: 18446744073674785817\nfn=(1) x\n0 42\ntotals: 42\n")).toBe(42);
    expect(() => totalOf("events: Ir\n")).toThrow("no totals: or summary: line");
  });

  test("every kind of V8's collector and compilers is recognised by name", () => {
    const kinds = (name: string) => {
      const shares = instructionShares(`events: Ir\nfn=(1) ${name}\n0 1\n`);
      return Object.entries(shares).find(([kind, n]) => kind !== "total" && n === 1)?.[0];
    };
    expect(kinds("v8::internal::ConcurrentMarking::RunMajor(v8::JobDelegate*)")).toBe("gc");
    expect(kinds("v8::internal::Sweeper::RawSweep(v8::internal::Page*)")).toBe("gc");
    expect(kinds("heap::base::SlotCallbackResult v8::internal::Scavenger::ScavengeObject<>()")).toBe("gc");
    expect(kinds("v8::internal::maglev::MaglevGraphBuilder::Build()")).toBe("compiling");
    expect(kinds("v8::internal::Parser::ParseFunction()")).toBe("compiling");
    expect(kinds("Builtins_KeyedLoadIC_Megamorphic")).toBe("javascript");
    expect(kinds("uv__io_poll")).toBe("other");
  });
});

describe("TM_SERVICE_WRAPPER", () => {
  test("runs a service's node under the wrapper, or as it is without one", () => {
    const before = process.env.TM_SERVICE_WRAPPER;
    try {
      delete process.env.TM_SERVICE_WRAPPER;
      expect(underWrapper(["/usr/bin/node", "dist/index.js"])).toEqual({
        command: "/usr/bin/node",
        args: ["dist/index.js"],
      });
      process.env.TM_SERVICE_WRAPPER = callgrindWrapper("/tmp/tm-callgrind-unit-test");
      const { command, args } = underWrapper(["/usr/bin/node", "dist/index.js"]);
      expect(command).toBe("valgrind");
      expect(args).toContain("--tool=callgrind");
      expect(args).toContain("--instr-atstart=no");
      expect(args.slice(-2)).toEqual(["/usr/bin/node", "dist/index.js"]);
    } finally {
      if (before === undefined) delete process.env.TM_SERVICE_WRAPPER;
      else process.env.TM_SERVICE_WRAPPER = before;
    }
  });
});
