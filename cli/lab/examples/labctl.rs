//! Manual driver of the lab API (what `hadeploy lab` wraps):
//! `labctl up|down|status|kill|start|cut|plug|exec|client [NAME] [NODE] [CMD]`.

use std::process::ExitCode;

use hadeploy_lab::{Lab, LabSpec};

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verb = args.first().map(String::as_str).unwrap_or("status");
    let spec = LabSpec::new(args.get(1).map(String::as_str).unwrap_or("hd"));
    let node = args.get(2).cloned().unwrap_or_default();
    let result = match verb {
        "up" => hadeploy_lab::up(&spec).map(|lab| print_json(&lab)),
        "down" => hadeploy_lab::down(&spec),
        "status" => {
            match hadeploy_lab::status(&spec.state_dir) {
                Some(st) => print_json(&st),
                None => println!("lab {} is not up", spec.name),
            }
            Ok(())
        }
        _ => Lab::load(&spec.state_dir).and_then(|lab| match verb {
            "kill" => lab.kill_node(&node),
            "start" => lab.start_node(&node),
            "cut" => lab.link_down(&node),
            "plug" => lab.link_up(&node),
            "client" => lab.client_netns().map(|c| print_json(&c)),
            "exec" => lab
                .exec(&node, &args[3..].join(" "))
                .map(|o| print!("{}{}", o.stdout, o.stderr)),
            _ => Err(hadeploy_lab::LabError::Spec(format!("unknown verb {verb}"))),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: {e}"),
    }
}
