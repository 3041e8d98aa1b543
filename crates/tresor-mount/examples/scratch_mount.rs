//! Mounts a throwaway volume for trying the mount by hand or measuring it:
//!
//! ```text
//! cargo run --release -p tresor-mount --example scratch_mount -- BACKING MOUNTPOINT [BLOCK_SIZE] [-o OPTIONS]
//! ```
//!
//! BACKING is created as a new volume (steward "scratch", fixed test keys:
//! never for real data) unless it already holds one made by this example.
//! Serves until `fusermount3 -u MOUNTPOINT`. Set RUST_LOG-style verbosity
//! with TRESOR_LOG=debug|info|warn (default warn).

use std::path::PathBuf;

use rand_core::OsRng;
use tresor_format::{DirIv, Identity, Volume, VolumeParams};
use tresor_mount::{parse_options, prepare, MountConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let level = match std::env::var("TRESOR_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    tracing_subscriber::fmt().with_max_level(level).init();
    let mut args = std::env::args().skip(1);
    let usage = "usage: scratch_mount BACKING MOUNTPOINT [BLOCK_SIZE] [-o OPTIONS]";
    let backing = PathBuf::from(args.next().ok_or(usage)?);
    let mountpoint = PathBuf::from(args.next().ok_or(usage)?);
    let mut block_size = VolumeParams::default().block_size;
    let mut options = String::new();
    while let Some(a) = args.next() {
        if a == "-o" {
            options = args.next().ok_or(usage)?;
        } else {
            block_size = a.parse()?;
        }
    }
    let steward = Identity::from_seed(&[0x5c; 32], "scratch")?;
    if !backing.join("tresor.volume").exists() {
        std::fs::create_dir_all(&backing)?;
        let params = VolumeParams { block_size, ..Default::default() };
        let (volume, name_key) = Volume::create(&steward, params, &mut OsRng)?;
        std::fs::write(backing.join("tresor.volume"), volume.to_bytes())?;
        let root_iv = tresor_format::PlaceKey::new(&name_key)
            .seal_diriv(&DirIv::generate(&mut OsRng), tresor_format::Place::Root);
        std::fs::write(backing.join("tresor.diriv"), root_iv)?;
    }
    let pinned = vec![steward.public().ed25519];
    let mut config = MountConfig::new(backing, mountpoint, steward, pinned);
    parse_options(&options, &mut config)?;
    let mounted = prepare(config)?.mount()?;
    eprintln!("mounted at {}; unmount with fusermount3 -u", mounted.mountpoint().display());
    mounted.run()?;
    Ok(())
}
