import { WebGGUFError } from '../errors.js';

/**
 * Every GPU buffer a model owns is made here, so bytes in use are known exactly and everything
 * is freed together.
 */
export class GpuAllocator {
  private readonly buffers = new Set<GPUBuffer>();
  bytesInUse = 0;
  peakBytes = 0;
  constructor(readonly device: GPUDevice, private readonly maxBinding: number) {}

  create(label: string, size: number, usage: number): GPUBuffer {
    const bytes = Math.max(16, Math.ceil(size / 16) * 16);
    if (usage & GPUBufferUsage.STORAGE && bytes > this.maxBinding) {
      throw new WebGGUFError('gpu', `${label} needs ${bytes} bytes, above this device's storage binding limit of ${this.maxBinding}`);
    }
    const buffer = this.device.createBuffer({ label, size: bytes, usage });
    this.buffers.add(buffer);
    this.bytesInUse += bytes;
    this.peakBytes = Math.max(this.peakBytes, this.bytesInUse);
    return buffer;
  }

  storage(label: string, size: number, extraUsage = 0): GPUBuffer {
    return this.create(label, size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC | extraUsage);
  }

  uniform(label: string, data: ArrayBuffer): GPUBuffer {
    const buffer = this.create(label, data.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  destroy(buffer: GPUBuffer): void {
    if (this.buffers.delete(buffer)) {
      this.bytesInUse -= buffer.size;
      buffer.destroy();
    }
  }

  destroyAll(): void {
    for (const b of [...this.buffers]) this.destroy(b);
  }
}

/** Packs mixed u32/f32 fields into a uniform buffer's bytes (WGSL u32 and f32 are both 4 bytes). */
export function uniformData(fields: { u?: number; f?: number }[]): ArrayBuffer {
  const data = new ArrayBuffer(Math.ceil(fields.length / 4) * 16);
  const view = new DataView(data);
  fields.forEach((field, i) => {
    if (field.f !== undefined) view.setFloat32(i * 4, field.f, true);
    else view.setUint32(i * 4, field.u ?? 0, true);
  });
  return data;
}
