//! The thumbnail atlas: one texture array of square pages, each a grid of `THUMB_SIDE`² slots.
//! Slots start transparent; the shader draws a disc for a slot not loaded yet.

use egui_wgpu::wgpu;

use super::map::{NO_TILE, Thumbnail};

/// The side of one thumbnail in the atlas, in pixels.
pub const THUMB_SIDE: u32 = 64;

/// The side of one atlas page: 2048² holds 1,024 thumbnails in 16 MiB, well under the 8192²
/// every wgpu device allows, so a project grows the atlas a page at a time.
pub const ATLAS_PAGE: u32 = 2048;

/// Where thumbnails go: how many pages, and the slot of each thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtlasLayout {
    pub pages: u32,
}

impl Default for AtlasLayout {
    fn default() -> Self {
        Self::for_thumbnails(0)
    }
}

impl AtlasLayout {
    /// Enough pages for `count` thumbnails (at least one, so the texture binding is valid).
    pub fn for_thumbnails(count: usize) -> Self {
        let per_page = Self::slots_per_page() as usize;
        Self {
            pages: count.div_ceil(per_page).max(1) as u32,
        }
    }

    /// At most `max_pages` pages (the device's `max_texture_array_layers`): thumbnails past the
    /// capacity get no tile and stay discs.
    pub fn capped(self, max_pages: u32) -> Self {
        Self {
            pages: self.pages.min(max_pages.max(1)),
        }
    }

    pub const fn slots_per_row() -> u32 {
        ATLAS_PAGE / THUMB_SIDE
    }

    pub const fn slots_per_page() -> u32 {
        Self::slots_per_row() * Self::slots_per_row()
    }

    pub fn capacity(&self) -> usize {
        (self.pages * Self::slots_per_page()) as usize
    }

    /// The tile id of thumbnail `index` (`layer << 16 | slot`), or [`NO_TILE`] past the capacity.
    pub fn tile(&self, index: usize) -> u32 {
        if index >= self.capacity() {
            return NO_TILE;
        }
        let per_page = Self::slots_per_page() as usize;
        (((index / per_page) as u32) << 16) | (index % per_page) as u32
    }

    /// GPU memory the atlas takes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.pages) * u64::from(ATLAS_PAGE) * u64::from(ATLAS_PAGE) * 4
    }
}

pub(super) struct Atlas {
    texture: wgpu::Texture,
    view: wgpu::TextureView,
    layout: AtlasLayout,
}

impl Atlas {
    pub(super) fn new(device: &wgpu::Device, layout: AtlasLayout) -> Self {
        let layout = layout.capped(device.limits().max_texture_array_layers);
        let pages = layout.pages;
        let texture = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("crossclr-thumbnail-atlas"),
            size: wgpu::Extent3d {
                width: ATLAS_PAGE,
                height: ATLAS_PAGE,
                depth_or_array_layers: pages,
            },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            // egui's framebuffer is gamma-space: sampled values go out as they are.
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
            view_formats: &[],
        });
        let view = texture.create_view(&wgpu::TextureViewDescriptor {
            dimension: Some(wgpu::TextureViewDimension::D2Array),
            ..Default::default()
        });
        Self {
            texture,
            view,
            layout,
        }
    }

    pub(super) fn view(&self) -> &wgpu::TextureView {
        &self.view
    }

    pub(super) fn layout(&self) -> AtlasLayout {
        self.layout
    }

    /// Writes one thumbnail into its slot; false for a tile outside the atlas or a picture of
    /// the wrong size.
    pub(super) fn write(&self, queue: &wgpu::Queue, thumbnail: &Thumbnail) -> bool {
        let side = THUMB_SIDE as usize;
        if thumbnail.tile == NO_TILE || thumbnail.rgba.len() != side * side * 4 {
            return false;
        }
        let layer = thumbnail.tile >> 16;
        let slot = thumbnail.tile & 0xffff;
        if layer >= self.layout.pages || slot >= AtlasLayout::slots_per_page() {
            return false;
        }
        let row = AtlasLayout::slots_per_row();
        queue.write_texture(
            wgpu::TexelCopyTextureInfo {
                texture: &self.texture,
                mip_level: 0,
                origin: wgpu::Origin3d {
                    x: (slot % row) * THUMB_SIDE,
                    y: (slot / row) * THUMB_SIDE,
                    z: layer,
                },
                aspect: wgpu::TextureAspect::All,
            },
            &thumbnail.rgba,
            wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(4 * THUMB_SIDE),
                rows_per_image: Some(THUMB_SIDE),
            },
            wgpu::Extent3d {
                width: THUMB_SIDE,
                height: THUMB_SIDE,
                depth_or_array_layers: 1,
            },
        );
        true
    }
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn tiles_fill_pages_in_order_and_stop_at_the_capacity() {
        let layout = AtlasLayout::for_thumbnails(2500);
        assert_eq!(layout.pages, 3);
        assert_eq!(layout.tile(0), 0);
        assert_eq!(layout.tile(1023), 1023);
        assert_eq!(layout.tile(1024), 1 << 16);
        assert_eq!(layout.tile(2499), (2 << 16) | (2499 - 2048));
        assert_eq!(layout.tile(3072), NO_TILE);
        assert_eq!(AtlasLayout::for_thumbnails(0).pages, 1);
        assert_eq!(layout.bytes(), 3 * 2048 * 2048 * 4);
    }
}
