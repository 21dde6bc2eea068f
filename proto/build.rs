//! Compiles the protos with the vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // prost-build runs the protoc named by PROTOC.
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure().compile_protos(
        &[
            "berth/shim/v1/shim.proto",
            "berth/manager/v1/manager.proto",
            "berth/log/v1/log.proto",
        ],
        &["."],
    )?;
    Ok(())
}
