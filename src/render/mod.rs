//! wgpu only: the explorer's map pipelines (`shaders/map.wgsl`), the thumbnail atlas, and the one
//! bridge into egui's render pass, [`MapCallback`] (an `egui_wgpu::CallbackTrait`). Uses nothing
//! of the crate: the app hands it plain arrays.
//!
//! Uploads happen on change only. The app pushes new positions, colours, edges, overlay or
//! thumbnails into a [`MapUploads`] it shares with the callback; `prepare` drains it. A frame
//! that changes nothing writes one 48-byte camera uniform.

mod atlas;
mod map;

pub use atlas::{ATLAS_PAGE, AtlasLayout, THUMB_SIDE};
pub use map::{
    Camera, GpuEdge, GpuOverlay, GpuPoint, MapCallback, MapGpu, MapGpus, MapUploads, NO_TILE,
    OverlayStyle, Thumbnail, UploadCounts, pack_colour,
};

/// The map shader's source, for the pipelines and for naga's validation in a test.
pub const MAP_SHADER: &str = include_str!("../../shaders/map.wgsl");

#[cfg(test)]
mod tests {
    use egui_wgpu::wgpu::naga;

    /// Every file in `shaders/` parses and validates, so a typo fails here and not as a blank map.
    #[test]
    fn every_shader_in_the_folder_validates_with_naga() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "wgsl") {
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            let module = naga::front::wgsl::parse_str(&source)
                .unwrap_or_else(|e| panic!("{}: {}", path.display(), e.emit_to_string(&source)));
            naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::default(),
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            checked += 1;
        }
        assert!(checked >= 1, "no shaders in {}", dir.display());
    }
}
