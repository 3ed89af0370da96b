//! Faults a test can put between rtinspect and a peer: a blackholed port.

use std::process::Command;

use crate::support::*;

/// Whether iptables can add rules here (root, a kernel that has them).
pub fn iptables_usable() -> bool {
    let ok = Command::new("iptables")
        .args(["-w", "-L", "INPUT", "-n"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!live_required(), "iptables is not usable here");
        skipped("iptables is not usable here: root and iptables needed");
    }
    ok
}

/// Drops every packet to and from a loopback TCP port while it lives: a
/// peer that vanished without a word (no RST, no FIN).
pub struct Blackhole(u16);

impl Blackhole {
    pub fn port(port: u16) -> Blackhole {
        for dir in ["--dport", "--sport"] {
            let p = port.to_string();
            let status = Command::new("iptables")
                .args([
                    "-w", "-I", "INPUT", "-i", "lo", "-p", "tcp", dir, &p, "-j", "DROP",
                ])
                .status()
                .unwrap();
            assert!(status.success(), "iptables -I");
        }
        Blackhole(port)
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        for dir in ["--dport", "--sport"] {
            let p = self.0.to_string();
            let _ = Command::new("iptables")
                .args([
                    "-w", "-D", "INPUT", "-i", "lo", "-p", "tcp", dir, &p, "-j", "DROP",
                ])
                .status();
        }
    }
}
