//! The table `make bench` ends with: every figure the benchmarks wrote to `target/bench/`,
//! its target and the ratio to it, with the date and the machine. Reads only.

mod common;

fn main() {
    let dir = common::out_dir();
    let order = ["up-single", "up-multi", "kind-up-single", "mttr", "overhead", "ctk", "drill"];
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for name in order {
        match std::fs::read_to_string(dir.join(format!("{name}.json"))) {
            Ok(text) => rows.extend(serde_json::from_str::<Vec<common::Row>>(&text).unwrap_or_default()),
            Err(_) => missing.push(name),
        }
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()))
        .unwrap_or(0);
    println!("firedrill benchmarks, {}; {cores} cores, {:.0} GiB", jiff::Timestamp::now().strftime("%Y-%m-%d"), mem as f64 / 1024.0 / 1024.0);
    if !missing.is_empty() {
        println!("not measured in this run: {}", missing.join(", "));
    }
    println!("\n{}", common::table(&rows));
}
