//! Reads what a simulated iPXE needs from a boot script: the kernel and initrd URLs
//! (with `set` variables expanded) and the callback token and URLs on the kernel line.

use std::collections::HashMap;

/// What a boot script tells the machine to do next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BootPlan {
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub token: Option<String>,
    pub phase_url: Option<String>,
    pub hardware_url: Option<String>,
}

/// Most `set` variables kept from one script.
const MAX_VARS: usize = 64;

fn expand(word: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                if let Some(v) = vars.get(&after[..end]) {
                    out.push_str(v);
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses an iPXE script (only `set`, `kernel`/`chain`, `initrd` matter here).
pub fn parse(text: &str) -> BootPlan {
    let mut plan = BootPlan::default();
    let mut vars: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let words: Vec<String> = line.split_whitespace().map(|w| expand(w, &vars)).collect();
        let Some(cmd) = words.first() else {
            continue;
        };
        let url = || {
            words
                .iter()
                .skip(1)
                .find(|w| w.starts_with("http://"))
                .cloned()
        };
        match cmd.as_str() {
            "set" if words.len() >= 3 && vars.len() < MAX_VARS => {
                vars.insert(words[1].clone(), words[2..].join(" "));
            }
            "kernel" | "chain" | "imgexec" if plan.kernel.is_none() => {
                plan.kernel = url();
                for w in &words[1..] {
                    if let Some(v) = w.strip_prefix("bootd.token=") {
                        plan.token = Some(v.to_string());
                    } else if let Some(v) = w.strip_prefix("bootd.phase_url=") {
                        plan.phase_url = Some(v.to_string());
                    } else if let Some(v) = w.strip_prefix("bootd.hardware_url=") {
                        plan.hardware_url = Some(v.to_string());
                    }
                }
            }
            "initrd" | "module" if plan.initrd.is_none() => plan.initrd = url(),
            _ => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_script_gives_urls_and_token() {
        let text = "#!ipxe\n\
            echo bootd: discovering 02:00:00:00:00:01 (x86_64-efi)\n\
            set base http://10.0.0.1:8080/assets\n\
            kernel ${base}/discovery/vmlinuz initrd=initrd.img bootd.mac=02:00:00:00:00:01 \
            bootd.phase_url=http://10.0.0.1:8080/api/v1/nodes/02:00:00:00:00:01/phase \
            bootd.hardware_url=http://10.0.0.1:8080/api/v1/nodes/02:00:00:00:00:01/hardware \
            bootd.token=abc.def || goto failed\n\
            initrd --name initrd.img ${base}/discovery/initrd.img || goto failed\n";
        let plan = parse(text);
        assert_eq!(
            plan.kernel.as_deref(),
            Some("http://10.0.0.1:8080/assets/discovery/vmlinuz")
        );
        assert_eq!(
            plan.initrd.as_deref(),
            Some("http://10.0.0.1:8080/assets/discovery/initrd.img")
        );
        assert_eq!(plan.token.as_deref(), Some("abc.def"));
        assert!(plan
            .phase_url
            .as_deref()
            .is_some_and(|u| u.ends_with("/phase")));
        assert!(plan
            .hardware_url
            .as_deref()
            .is_some_and(|u| u.ends_with("/hardware")));
    }
}
