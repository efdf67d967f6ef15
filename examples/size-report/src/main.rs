//! `size-report`: what the firmware costs, read from its ELF file with no
//! system tools (`llvm-size` is missing on a fresh CI machine).
//!
//! ```text
//! size-report <firmware.elf> [--text-max BYTES]
//!             [--stack <firmware-with-stack-sizes.elf> [--unreachable NAME]...]
//! ```
//!
//! Prints the sizes of `.vector_table`, `.text`, `.rodata`, `.data` and
//! `.bss`, and exits with status 1 when `.text` is over `--text-max`.
//!
//! With `--stack`, a build of the same firmware made with
//! `-Z emit-stack-sizes` (its `.stack_sizes` section holds, per function,
//! its address as a `u32` and its frame size as a ULEB128), it bounds the
//! stack:
//!
//! - the **largest frame**;
//! - the **worst-case stack**: the longest path through the call graph
//!   from the reset handler, each function counted with its frame, plus the
//!   deepest exception handler and the 108 bytes the core stacks on an
//!   exception with the FPU on. The graph comes from decoding every `BL`
//!   and every branch out of a function in `.text`. The bound holds when
//!   no function recurses (checked: a cycle is reported and the bound
//!   withheld), no call goes through a register (checked: counted, and
//!   the bound withheld), and no frame is sized at run time (checked the
//!   same way). Functions missing from `.stack_sizes` (compiler-builtins,
//!   the assembly reset handler) get the sum of every push and SP
//!   subtraction in their code, which is at least their frame;
//! - the **sum of every reachable frame**, a looser bound that needs only
//!   the absence of recursion.
//!
//! `--unreachable NAME` takes every function whose name starts with
//! `NAME` out of the call graph: for code the binary contains but never
//! runs, by an argument the caller states where it passes the option (the
//! report lists what it took out, so the assumption stays visible).

mod elf;
mod thumb;

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use elf::{Elf, STT_FUNC, demangle, u32_at};
use thumb::Body;

/// Bytes the Cortex-M4F stacks on exception entry with the FPU context:
/// 26 words, plus 4 bytes of alignment padding.
const EXCEPTION_FRAME_BYTES: u64 = 26 * 4 + 4;

struct Args {
    elf: String,
    text_max: Option<u64>,
    stack_elf: Option<String>,
    unreachable: Vec<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        elf: String::new(),
        text_max: None,
        stack_elf: None,
        unreachable: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--text-max" => {
                let value = args.next().ok_or("--text-max needs a byte count")?;
                parsed.text_max = Some(
                    value
                        .parse()
                        .map_err(|_| format!("bad --text-max {value}"))?,
                );
            }
            "--stack" => parsed.stack_elf = Some(args.next().ok_or("--stack needs an ELF file")?),
            "--unreachable" => parsed
                .unreachable
                .push(args.next().ok_or("--unreachable needs a function name")?),
            _ if parsed.elf.is_empty() => parsed.elf = arg,
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    if parsed.elf.is_empty() {
        return Err("usage: size-report <firmware.elf> [--text-max BYTES] [--stack <elf>]".into());
    }
    Ok(parsed)
}

fn load(path: &str) -> Result<Elf, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    Elf::parse(bytes).map_err(|e| format!("{path}: {e}"))
}

fn section_bytes(elf: &Elf, name: &str) -> u64 {
    elf.section(name).map_or(0, |s| u64::from(s.size_bytes))
}

/// Prints the sections; returns the `.text` size.
fn report_sections(elf: &Elf) -> u64 {
    let size = |name| section_bytes(elf, name);
    println!("section          bytes");
    for name in [
        ".vector_table",
        ".text",
        ".rodata",
        ".data",
        ".bss",
        ".uninit",
    ] {
        println!("{name:<14} {:>7}", size(name));
    }
    let flash = size(".vector_table") + size(".text") + size(".rodata") + size(".data");
    let ram = size(".data") + size(".bss") + size(".uninit");
    println!("flash image (vector table + text + rodata + data): {flash} bytes");
    println!("static RAM (data + bss + uninit): {ram} bytes");
    size(".text")
}

/// One function of `.text`.
struct Function {
    name: String,
    start: u32,
    end: u32,
    /// From `.stack_sizes`, or `None` when the compiler did not emit it.
    frame_listed: Option<u64>,
    body: Body,
}

impl Function {
    fn frame_bytes(&self) -> u64 {
        self.frame_listed
            .unwrap_or_else(|| u64::from(self.body.pushed_bytes))
    }
}

/// `.stack_sizes`: address (Thumb bit cleared) to frame size.
fn stack_sizes(elf: &Elf) -> Result<BTreeMap<u32, u64>, String> {
    let section = elf
        .section(".stack_sizes")
        .ok_or("no .stack_sizes section: build with RUSTFLAGS=\"-Z emit-stack-sizes\"")?;
    let bytes = elf.data(section)?;
    let mut sizes = BTreeMap::new();
    let mut at = 0;
    while at < bytes.len() {
        let address = u32_at(bytes, at)? & !1;
        at += 4;
        let mut size = 0u64;
        // A ULEB128 of a u64 has at most 10 bytes.
        for shift in (0..70).step_by(7) {
            let byte = *bytes.get(at).ok_or("truncated .stack_sizes")?;
            at += 1;
            size |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        sizes.insert(address, size);
    }
    Ok(sizes)
}

/// Every function of `.text` with its frame and decoded body.
fn functions(elf: &Elf) -> Result<Vec<Function>, String> {
    let text = elf.section(".text").ok_or("no .text section")?;
    let code = elf.data(text)?;
    let text_range = text.address..text.address + text.size_bytes;
    let symbols = elf.symbols()?;
    let frames = stack_sizes(elf)?;
    // Mapping symbols: `$t` starts Thumb code, `$d` data (literal pools).
    let mapping: BTreeMap<u32, bool> = symbols
        .iter()
        .filter(|s| text_range.contains(&s.value))
        .filter_map(|s| match s.name.get(..2) {
            Some("$t") => Some((s.value & !1, true)),
            Some("$d") => Some((s.value & !1, false)),
            _ => None,
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut functions = Vec::new();
    for symbol in &symbols {
        let start = symbol.value & !1;
        if symbol.kind != STT_FUNC || symbol.size_bytes == 0 || !text_range.contains(&start) {
            continue;
        }
        if !seen.insert(start) {
            continue;
        }
        let end = start + symbol.size_bytes;
        let mut body = Body::default();
        for (from, to) in code_ranges(&mapping, start, end) {
            let offset = (from - text.address) as usize;
            let bytes = code
                .get(offset..offset + (to - from) as usize)
                .ok_or("function outside .text")?;
            thumb::decode(bytes, from, start, end, &mut body);
        }
        functions.push(Function {
            name: demangle(&symbol.name),
            start,
            end,
            frame_listed: frames.get(&start).copied(),
            body,
        });
    }
    functions.sort_by_key(|f| f.start);
    Ok(functions)
}

/// The parts of `[start, end)` that hold code, by the mapping symbols
/// (all of it when there are none: code is the default in `.text`).
fn code_ranges(mapping: &BTreeMap<u32, bool>, start: u32, end: u32) -> Vec<(u32, u32)> {
    let mut is_code = mapping
        .range(..=start)
        .next_back()
        .is_none_or(|(_, &code)| code);
    let mut from = start;
    let mut ranges = Vec::new();
    for (&at, &code) in mapping.range(start + 1..end) {
        if is_code && !code {
            ranges.push((from, at));
        }
        if !is_code && code {
            from = at;
        }
        is_code = code;
    }
    if is_code {
        ranges.push((from, end));
    }
    ranges
}

/// The call graph: for each function, the indexes of those it calls or
/// branches to, leaving out the functions `unreachable` says never run.
fn call_graph(functions: &[Function], unreachable: &[bool]) -> (Vec<Vec<usize>>, usize) {
    let mut unresolved = 0;
    let index_of = |address: u32| {
        let address = address & !1;
        // The function holding `address`: a branch into the middle of one
        // is charged to it, which can only raise the bound.
        let index = functions
            .partition_point(|f| f.start <= address)
            .checked_sub(1)?;
        (address < functions[index].end).then_some(index)
    };
    let graph = functions
        .iter()
        .map(|f| {
            let targets = f.body.calls.iter().chain(&f.body.branches_out);
            let mut callees = BTreeSet::new();
            for &target in targets {
                match index_of(target) {
                    Some(index) if unreachable[index] => {}
                    Some(index) => {
                        callees.insert(index);
                    }
                    None => unresolved += 1,
                }
            }
            callees.into_iter().collect()
        })
        .collect();
    (graph, unresolved)
}

/// The deepest stack from function `root`: its bytes and the path, or
/// the cycle found on the way.
fn deepest(
    root: usize,
    functions: &[Function],
    graph: &[Vec<usize>],
    memo: &mut Vec<Option<(u64, Option<usize>)>>,
    on_path: &mut Vec<bool>,
) -> Result<u64, Vec<usize>> {
    if let Some((bytes, _)) = memo[root] {
        return Ok(bytes);
    }
    if on_path[root] {
        return Err(vec![root]);
    }
    on_path[root] = true;
    let mut best: (u64, Option<usize>) = (0, None);
    for &callee in &graph[root] {
        if callee == root {
            on_path[root] = false;
            return Err(vec![root, root]);
        }
        match deepest(callee, functions, graph, memo, on_path) {
            Ok(bytes) if bytes > best.0 || best.1.is_none() => best = (bytes, Some(callee)),
            Ok(_) => {}
            Err(mut cycle) => {
                on_path[root] = false;
                cycle.push(root);
                return Err(cycle);
            }
        }
    }
    on_path[root] = false;
    let bytes = functions[root].frame_bytes() + best.0;
    memo[root] = Some((bytes, best.1));
    Ok(bytes)
}

/// The roots: every handler in the vector table (after the initial SP).
fn roots(elf: &Elf, functions: &[Function]) -> Result<Vec<usize>, String> {
    let table = elf.section(".vector_table").ok_or("no .vector_table")?;
    let words = elf.data(table)?;
    let mut roots = Vec::new();
    for entry in words.chunks_exact(4).skip(1) {
        let address = u32_at(entry, 0)? & !1;
        if let Some(index) = functions.iter().position(|f| f.start == address)
            && !roots.contains(&index)
        {
            roots.push(index);
        }
    }
    Ok(roots)
}

fn report_stack(elf: &Elf, unreachable_names: &[String]) -> Result<(), String> {
    let functions = functions(elf)?;
    let unreachable: Vec<bool> = functions
        .iter()
        .map(|f| {
            unreachable_names
                .iter()
                .any(|name| f.name.starts_with(name.as_str()))
        })
        .collect();
    for (function, _) in functions.iter().zip(&unreachable).filter(|(_, out)| **out) {
        println!(
            "taken out as unreachable (--unreachable): {}",
            function.name
        );
    }
    let (graph, unresolved) = call_graph(&functions, &unreachable);
    let listed = functions
        .iter()
        .filter(|f| f.frame_listed.is_some())
        .count();
    let largest = functions
        .iter()
        .max_by_key(|f| f.frame_bytes())
        .ok_or("no functions")?;
    let indirect: u32 = functions.iter().map(|f| f.body.indirect).sum();
    let dynamic: u32 = functions.iter().map(|f| f.body.dynamic_stack).sum();
    let calls: usize = graph.iter().map(Vec::len).sum();
    println!(
        "\nstack: {} functions, {listed} with a frame in .stack_sizes, {} sized from their \
         pushes and SP subtractions",
        functions.len(),
        functions.len() - listed
    );
    println!(
        "largest frame: {} bytes ({})",
        largest.frame_bytes(),
        largest.name
    );
    let mut by_frame: Vec<&Function> = functions.iter().collect();
    by_frame.sort_by_key(|f| std::cmp::Reverse(f.frame_bytes()));
    for function in by_frame.iter().take(6) {
        println!("  {:>6}  {}", function.frame_bytes(), function.name);
    }
    println!(
        "call graph: {calls} call edges ({unresolved} targets outside any function), \
         {indirect} calls or jumps through a register, {dynamic} frames sized at run time"
    );

    let roots = roots(elf, &functions)?;
    let mut memo = vec![None; functions.len()];
    let mut on_path = vec![false; functions.len()];
    let mut depths = Vec::new();
    for &root in &roots {
        match deepest(root, &functions, &graph, &mut memo, &mut on_path) {
            Ok(bytes) => depths.push((root, bytes)),
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .rev()
                    .map(|&i| functions[i].name.as_str())
                    .collect();
                println!("RECURSION: {}; no worst-case bound", names.join(" -> "));
                return Ok(());
            }
        }
    }
    if indirect > 0 || dynamic > 0 || unresolved > 0 {
        println!(
            "worst case: not bounded (see the counts above); the sum of every frame is not either"
        );
        return Ok(());
    }
    // Visited by the walks above: every function a handler can reach.
    let reachable_sum: u64 = functions
        .iter()
        .zip(&memo)
        .filter(|(_, seen)| seen.is_some())
        .map(|(f, _)| f.frame_bytes())
        .sum();
    let (&(reset, reset_bytes), handlers) = depths.split_first().ok_or("empty vector table")?;
    let handler_bytes = handlers.iter().map(|&(_, bytes)| bytes).max().unwrap_or(0);
    println!("no recursion, no indirect calls: the call graph bounds the stack");
    println!(
        "sum of every reachable frame: {reachable_sum} bytes (a loose bound: with no \
         recursion no path holds a function twice)"
    );
    println!(
        "deepest path from {} ({reset_bytes} bytes):",
        functions[reset].name
    );
    let mut at = Some(reset);
    while let Some(index) = at {
        let function = &functions[index];
        let source = if function.frame_listed.is_some() {
            ""
        } else {
            " (from its pushes)"
        };
        println!("  {:>6}  {}{source}", function.frame_bytes(), function.name);
        at = memo[index].and_then(|(_, next)| next);
    }
    println!(
        "worst-case stack: {} bytes = {reset_bytes} (reset path) + {EXCEPTION_FRAME_BYTES} \
         (exception entry, FPU context) + {handler_bytes} (deepest exception handler)",
        reset_bytes + EXCEPTION_FRAME_BYTES + handler_bytes
    );
    Ok(())
}

fn run() -> Result<bool, String> {
    let args = parse_args()?;
    let elf = load(&args.elf)?;
    let text = report_sections(&elf);
    let mut within = true;
    if let Some(max) = args.text_max {
        if text > max {
            println!(
                ".text: {text} bytes, OVER the {max}-byte budget by {}",
                text - max
            );
            within = false;
        } else {
            println!(".text: {text} bytes, within the {max}-byte budget");
        }
    }
    if let Some(path) = &args.stack_elf {
        let stack_elf = load(path)?;
        let stack_text = section_bytes(&stack_elf, ".text");
        if stack_text != text {
            println!(
                "note: the stack-size build's .text is {stack_text} bytes, {text} without \
                 -Z emit-stack-sizes; the frames below are that build's"
            );
        }
        report_stack(&stack_elf, &args.unreachable)?;
    }
    Ok(within)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("size-report: {error}");
            ExitCode::from(2)
        }
    }
}
